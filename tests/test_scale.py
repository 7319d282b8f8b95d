"""Dataset scale on Dask (``plqa_nb.scale``): ``--workers`` gives the serial run's table and files, a worker
killed mid-run loses and repeats nothing, and without the scale options dask is not even imported."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
import torch

from plqa_nb.batch import is_temporary
from plqa_nb.bench import dask_workers
from plqa_nb.cli import main
from plqa_nb.scale import cluster_client, serial_threads

from tolerances import (FEEDBACK_NUMBER_ATOL, PATH_PLQ_ATOL, PATH_QUALITY_ATOL, PATH_SALIENCY_REL,
                        RENDERED_MAP_PIXEL_SHARE, max_relative, same_text_but_numbers)

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
FLOAT_COLUMNS = ("quality", "quality_raw")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _first_photos(faces_dir, n: int) -> list[int]:
    """The numbers of the first ``n`` London neutral photos (the set skips some numbers)."""
    return sorted(int(p.stem) for p in (faces_dir / "london" / "neutral").glob("[0-9][0-9][0-9].jpg"))[:n]


def _empty_files(folder: Path, names: list[str]) -> None:
    """Empty files of these names in ``folder`` (made): inputs of a run whose steps never read them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _linked_photos(faces_dir, dest: Path, numbers) -> list[Path]:
    """Symlinks to London neutral photos (never copies of them) in ``dest``."""
    dest.mkdir()
    links = []
    for i in numbers:
        link = dest / f"{i:03d}.jpg"
        link.symlink_to(faces_dir / "london" / "neutral" / f"{i:03d}.jpg")
        links.append(link)
    return links


@pytest.mark.slow
def test_workers_write_the_serial_runs_table_and_files(faces_dir, tmp_path):
    src = tmp_path / "in"
    _linked_photos(faces_dir, src, range(1, 6))
    (src / "003b.jpg").write_text("not a photo\n")  # an error row between ok rows, in the same place
    serial, dist = tmp_path / "serial", tmp_path / "workers"
    threads = torch.get_num_threads()
    assert main(["explain", str(src), "--out", str(serial), "--batch-size", "2"]) == 0
    assert torch.get_num_threads() == threads  # the serial run's own thread count (serial_threads) is undone
    # the workers run as many torch threads as the serial run: other thread counts move MTCNN's landmarks in their
    # last bits, and with them a crop pixel by one grey level now and then (see docs/cluster.md)
    assert main(["explain", str(src), "--out", str(dist), "--batch-size", "2", "--workers", "2",
                 "--threads", str(serial_threads())]) == 0
    a, b = _rows(serial / "results.csv"), _rows(dist / "results.csv")
    assert [r["file"] for r in a] == [r["file"] for r in b] == sorted(str(p) for p in src.iterdir())
    assert [r["status"] for r in b].count("error") == 1 and "not a readable image" in b[3]["error"]
    for ra, rb in zip(a, b):
        same = [c for c in ra if c not in FLOAT_COLUMNS + ("seconds", "feedback")]
        assert {c: rb[c] for c in same} == {c: ra[c] for c in same}
        assert same_text_but_numbers(rb["feedback"], ra["feedback"], FEEDBACK_NUMBER_ATOL), (ra, rb)
        for c in FLOAT_COLUMNS:
            assert (ra[c] == rb[c] == "") or abs(float(ra[c]) - float(rb[c])) <= PATH_QUALITY_ATOL
    for r in (r for r in a if r["status"] == "ok"):
        za, zb = np.load(serial / r["output"]), np.load(dist / r["output"])
        assert sorted(za.files) == sorted(zb.files)
        assert np.array_equal(za["crop"], zb["crop"]) and np.array_equal(za["matrix"], zb["matrix"])
        assert abs(float(za["quality"]) - float(zb["quality"])) <= PATH_QUALITY_ATOL
        assert np.abs(za["plq"] - zb["plq"]).max() <= PATH_PLQ_ATOL
        assert max_relative(zb["saliency"], za["saliency"]) <= PATH_SALIENCY_REL
        png = r["output"].replace(".npz", ".png")
        pa, pb = cv2.imread(str(serial / png)), cv2.imread(str(dist / png))
        assert pa.shape == pb.shape and (pa != pb).any(2).mean() <= RENDERED_MAP_PIXEL_SHARE


@pytest.mark.slow
def test_experiments_on_workers_write_the_serial_runs_rows_and_files(faces_dir, tmp_path):
    """`plqa experiment icao --methods` and `masking` on 2 workers: the serial run's rows in file order (an unreadable
    file's error row in its place), its panels and its localization rows, bit for bit (one torch thread in both)."""
    src = tmp_path / "in"
    _linked_photos(faces_dir, src, _first_photos(faces_dir, 3))
    (src / "001b.jpg").write_text("not a photo\n")
    for name, extra in (("icao", ["--only", "face_mask", "--only", "cap", "--methods", "saliency"]),
                        ("masking", ["--sizes", "20", "40"])):
        serial, dist = tmp_path / f"{name}-serial", tmp_path / f"{name}-workers"
        for out, scale in ((serial, []), (dist, ["--workers", "2"])):
            assert main(["experiment", name, str(src), "--out", str(out), "--batch-size", "2", "--threads", "1",
                         *extra, *scale]) == 0
        a, b = _rows(serial / f"{name}.csv"), _rows(dist / f"{name}.csv")
        assert [r["status"] for r in a].count("error") == 1 and len(a) > 4
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in b] == \
               [{k: v for k, v in r.items() if k != "seconds"} for r in a]
        for output in {r["output"] for r in a if r["status"] == "ok"}:
            za, zb = np.load(serial / output), np.load(dist / output)
            assert all(np.array_equal(za[k], zb[k]) for k in za.files), output
    local = _rows(tmp_path / "icao-workers" / "localization.csv")
    assert len(local) == 3 * 2 * 2  # photos × occluders × (saliency, the feedback's deviation map)
    assert local == _rows(tmp_path / "icao-serial" / "localization.csv")
    assert (tmp_path / "icao-workers" / "localization_summary.csv").read_bytes() == \
           (tmp_path / "icao-serial" / "localization_summary.csv").read_bytes()


def test_local_workers_start_with_the_packages_environment_and_dask_settings():
    """Dask's nanny would start the workers with MALLOC_TRIM_THRESHOLD_ set, which fixes glibc's mmap threshold:
    each batch's tensors would be faulted in anew (half again the CPU per file, docs/results/benchmark.md). The
    workers run without Dask's statistical profiler, sample the system every 5 s, and tick and check their memory
    every second (``LOCAL_CLUSTER_CONFIG``)."""
    import dask

    def settings() -> tuple:
        return tuple(dask.config.get(key) for key in ("distributed.worker.profile.enabled",
                                                        "distributed.admin.system-monitor.interval",
                                                        "distributed.admin.tick.interval",
                                                        "distributed.worker.memory.monitor-interval"))

    with cluster_client(1, None, 1) as client:
        seen = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(os.environ.get, "OMP_NUM_THREADS")
        config = client.run(settings)
        scheduler_tick_s = client.cluster.scheduler._tick_interval  # the scheduler runs in this process
    assert list(seen.values()) == [None] and list(threads.values()) == ["1"]
    assert list(config.values()) == [(False, "5s", "1s", "1s")] and scheduler_tick_s == 1.0


def _masked(text: str, out: Path) -> str:
    """``text`` without the run's output folder and the random part of temporary names."""
    return re.sub(r"\.plqa-tmp-[0-9a-f]{16}-", ".plqa-tmp-*-", text.replace(str(out), "OUT"))


@pytest.mark.slow
def test_overlapped_serial_run_writes_the_plain_runs_rows_and_files(faces_dir, tmp_path, monkeypatch, capsys):
    """A serial run prepares the next batch and writes the last one's files on threads (``run_batch(overlap=True)``):
    its rows (but ``seconds``), notes and files are those of the plain loop, byte for byte, with a bad file, a
    batch whose compute fails after queuing its writes (each face retried alone), a face that always fails, and a
    file that cannot be written; no file of a failed face is written."""
    from plqa_nb import batch, scale
    from plqa_nb.commands.explain import ExplainStep

    src = tmp_path / "in"
    _linked_photos(faces_dir, src, _first_photos(faces_dir, 7))
    (src / "003b.jpg").write_text("not a photo\n")
    inputs = sorted(src.iterdir())
    names = [p.name for p in inputs]
    blocked = Path("maps") / f"{batch.output_stem(inputs[2], batch.common_root(inputs))}.npz"
    compute = ExplainStep.compute

    def failing(self, items):
        rows = compute(self, items)  # queues (in the plain loop: writes) the files
        stems = {Path(f).name for f, _ in items}
        if names[5] in stems:
            raise RuntimeError("this face always fails")
        if names[1] in stems and len(items) > 1:
            raise RuntimeError("this batch fails")
        return rows

    monkeypatch.setattr(ExplainStep, "compute", failing)
    runs = {}
    for overlap, computes in ((False, 1), (True, 1), (True, 2)):
        out = tmp_path / f"overlap-{overlap}-{computes}"
        (out / blocked).mkdir(parents=True)  # an output path that cannot be written

        def run_batch(*a, **k):
            assert k["computes"] == scale.SERIAL_COMPUTES  # dlib's network and the saliency: a concurrent step
            return batch.run_batch(*a, **{**k, "overlap": overlap, "computes": computes})

        monkeypatch.setattr(scale, "run_batch", run_batch)
        assert main(["explain", str(src), "--out", str(out), "--batch-size", "2"]) == 0
        rows = [{c: _masked(v, out) for c, v in r.items() if c != "seconds"} for r in _rows(out / "results.csv")]
        files = {p.relative_to(out): p.read_bytes() for p in (out / "maps").rglob("*") if p.is_file()}
        runs[overlap, computes] = rows, files, _masked(capsys.readouterr().err, out)
    for computes in (1, 2):
        _check_same_run(runs[False, 1], runs[True, computes])


def _check_same_run(plain_run: tuple, run: tuple) -> None:
    """The overlapped ``run``'s (rows, files, stderr) against those of the plain loop."""
    (plain, plain_files, plain_err), (rows, files, err) = plain_run, run
    assert rows == plain
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "error", "ok", "error", "ok", "ok"]
    assert "IsADirectoryError" in rows[2]["error"] and "always fails" in rows[5]["error"]
    # the files of the faces that are ok, and no others (the plain loop leaves those its failed computes wrote)
    ok = {Path(r["output"]).with_suffix(x) for r in rows if r["status"] == "ok" for x in (".npz", ".png")}
    assert set(files) == ok and files == {p: plain_files[p] for p in ok}
    assert [line for line in err.splitlines() if "error" in line] == \
        [line for line in plain_err.splitlines() if "error" in line]


def _start_and_wait_for_a_row(src: Path, out: Path) -> tuple[subprocess.Popen, list]:
    """Start `plqa explain --workers 2 --batch-size 1` and return it and its workers once it has written a row."""
    proc = subprocess.Popen([sys.executable, "-m", "plqa_nb.cli", "explain", str(src), "--out", str(out),
                             "--batch-size", "1", "--workers", "2"], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    table, deadline = out / "results.csv", time.time() + 300
    while proc.poll() is None and time.time() < deadline and len(_rows(table) if table.exists() else []) < 1:
        time.sleep(0.05)
    workers = dask_workers(psutil.Process(proc.pid))
    assert proc.poll() is None and len(workers) == 2 and len(_rows(table)) < len(list(src.iterdir())), \
        "kill too late: give it more photos"
    return proc, workers


def _check_complete(out: Path, photos: list[Path]) -> None:
    """Every photo has exactly one row, ok, with its outputs, and no temporary is left."""
    rows = _rows(out / "results.csv")
    assert sorted(r["file"] for r in rows) == sorted(map(str, photos))
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    for r in rows:
        assert np.load(out / r["output"])["plq"].shape == (150, 150)
        assert (out / r["output"].replace(".npz", ".png")).is_file()
    assert not [p for p in out.rglob("*") if is_temporary(p.name)]


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_and_repeats_nothing(faces_dir, tmp_path):
    """SIGKILLs one of two workers once the first row is written; its batches run again elsewhere."""
    src, out = tmp_path / "in", tmp_path / "out"
    photos = _linked_photos(faces_dir, src, _first_photos(faces_dir, 24))  # enough that it cannot end before the kill
    proc, workers = _start_and_wait_for_a_row(src, out)
    workers[0].send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _check_complete(out, photos)


@pytest.mark.slow
def test_a_killed_client_takes_its_workers_and_the_rerun_resumes(faces_dir, tmp_path):
    """SIGKILLs the plqa process of a --workers run once it has written a row: its workers end with it, and a rerun
    does the rest without rewriting what the first run recorded."""

    src, out = tmp_path / "in", tmp_path / "out"
    # enough photos that the run cannot finish between two looks at its table, however fast the machine
    photos = _linked_photos(faces_dir, src, _first_photos(faces_dir, 24))
    proc, workers = _start_and_wait_for_a_row(src, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "workers outlived their client"
    recorded = {p: p.read_bytes() for r in _rows(out / "results.csv") if r["status"] == "ok"
                for p in (out / r["output"], (out / r["output"]).with_suffix(".png"))}
    assert recorded
    res = subprocess.run([sys.executable, "-m", "plqa_nb.cli", "explain", str(src), "--out", str(out),
                          "--workers", "2"], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    _check_complete(out, photos)
    assert {p: p.read_bytes() for p in recorded} == recorded


def test_without_scale_options_dask_is_not_imported(faces_dir, tmp_path):
    code = ("import sys; from plqa_nb.cli import main; "
            f"assert main(['quality', {str(faces_dir / 'london/neutral/001.jpg')!r}, '--out', "
            f"{str(tmp_path / 'q.csv')!r}]) == 0; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    assert _rows(tmp_path / "q.csv")[0]["status"] == "ok"


@pytest.mark.slow
def test_bench_scaling_table(faces_dir, tmp_path, capsys):
    """`plqa bench --scaling`: a serial run, a one-worker run and a serial run again of real photos, each timed and
    its memory sampled; the first serial run's seconds per stage and the network's maps/s at the same batch size."""
    src = tmp_path / "in"
    _linked_photos(faces_dir, src, range(1, 4))
    report = tmp_path / "scaling.json"
    assert main(["bench", "--scaling", str(src), "--max-workers", "1", "--scaling-out", str(tmp_path / "runs"),
                 "--batch-size", "1", "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "| serial | 3 |" in table and "| 1 | 3 |" in table and "| serial, again | 3 |" in table
    serial, one, again = json.loads(report.read_text())["runs"]
    assert (serial["workers"], one["workers"], again["workers"], again["again"]) == (0, 1, 0, True)
    assert serial["files_per_s"] > 0 and one["files_per_s"] > 0
    assert serial["client_peak_mb"] > 100 and serial["worker_peak_mb"] is None  # torch and the model: > 100 MiB
    assert one["worker_peak_mb"] > 100  # the model lives in the worker
    for run in (serial, one, again):  # three files may arrive within one sample: no steady window then
        assert (run["steady_cpu_ms_per_file"] is None) == (run["steady_files_per_s"] is None)
        assert run["steady_cores"] is None or 0 < run["steady_cores"] <= os.cpu_count() + 1
    for name in ("serial", "workers-1", "serial-again"):
        assert [r["status"] for r in _rows(tmp_path / "runs" / name / "results.csv")] == ["ok"] * 3
    result = json.loads(report.read_text())
    assert set(serial["stage_ms_per_file"]) == {"prepare", "network", "maps", "output"}
    assert all(v > 0 for v in serial["stage_ms_per_file"].values()) and 0 < serial["stage_wall_s"] < serial["wall_s"]
    assert abs(sum(serial["stage_share"].values()) - 1) < 1e-9
    assert result["map_only_faces_per_s"] > 0 and "serial end to end (round 1):" in table
    assert "serial / network alone" in table and set(result["workers_over_serial"]) == {"1"}


@pytest.mark.slow
def test_scheduler_of_a_running_cluster(faces_dir, tmp_path):
    """`plqa quality --scheduler ADDRESS` on a cluster started with dask's own commands (as dask-jobqueue's jobs
    start theirs, with the two Dask threads of docs/cluster.md) gives the serial table: its worker runs one torch
    thread (dask's nanny sets OMP_NUM_THREADS=1), the serial run too (--threads 1)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-c", "from distributed.cli.dask_scheduler import main; main()",
                                  "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-c", "from distributed.cli.dask_worker import main; main()", address,
                               "--nthreads", "2", "--nworkers", "1", "--no-dashboard"], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:  # the run would wait for a worker forever: not the test
            client.wait_for_workers(1, timeout=120)
        src = tmp_path / "in"
        _linked_photos(faces_dir, src, range(1, 4))
        (src / "002b.jpg").write_bytes(b"")
        assert main(["quality", str(src), "--out", str(tmp_path / "serial.csv"), "--threads", "1"]) == 0
        assert main(["quality", str(src), "--out", str(tmp_path / "cluster.csv"), "--scheduler", address]) == 0
    finally:
        worker.terminate()
        worker.wait(60)
        scheduler.terminate()
        scheduler.wait(60)
    a, b = _rows(tmp_path / "serial.csv"), _rows(tmp_path / "cluster.csv")
    assert [r["file"] for r in b] == [r["file"] for r in a] and [r["status"] for r in b] == ["ok", "ok", "error", "ok"]
    for ra, rb in zip(a, b):
        for c in ra:
            if c in FLOAT_COLUMNS and ra[c]:
                assert abs(float(rb[c]) - float(ra[c])) <= PATH_QUALITY_ATOL, (ra["file"], c)
            elif c != "seconds":
                assert rb[c] == ra[c], (ra["file"], c)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own niceness on Linux only")
def test_overlapped_run_keeps_the_callers_niceness_on_every_thread(tmp_path):
    """An overlapped serial run prepares, computes and writes on threads of the caller's niceness. With its helpers
    at niceness 19, 102 photos took 204 s instead of 13 s beside two busy processes (docs/results/benchmark.md)."""
    import threading

    from plqa_nb import batch

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    _empty_files(tmp_path / "in", ["a.png", "b.png", "c.png"])
    seen = {"prepare": set(), "compute": set(), "write": set()}

    def prepare(file):
        seen["prepare"].add(niceness())
        return file

    def compute(items):
        seen["compute"].add(niceness())
        batch.write_output(str(items[0][0]), lambda: seen["write"].add(niceness()))
        return [{"file": str(f), "status": "ok", "error": "", "seconds": "0"} for f, _ in items]

    before = niceness()
    table = batch.ResultTable(tmp_path / "out" / "results.csv", ["file", "status", "error", "seconds"])
    summary = batch.run_batch([tmp_path / "in"], table, prepare, compute, batch_size=1, overlap=True)
    assert summary.ok == 3
    assert seen == {"prepare": {before}, "compute": {before}, "write": {before}}
    assert niceness() == before


def test_a_serial_run_computes_two_batches_at_once_and_keeps_their_order(tmp_path):
    """With ``computes=2`` (a concurrent step, ``scale.SERIAL_COMPUTES``) two batches compute at once on threads at
    the caller's niceness; a batch that finishes before the one ahead of it waits for it, so that rows follow their
    files, and each batch's files are written before its rows are appended."""
    import threading

    from plqa_nb import batch

    names = ["a.png", "b.png", "c.png", "d.png", "e.png"]
    _empty_files(tmp_path / "in", names)
    b_done, counter, active, most, waited, niceness = threading.Event(), threading.Lock(), [0], [0], [], set()
    written: list[str] = []
    rows_at_b: list[int] = []
    table = batch.ResultTable(tmp_path / "out" / "results.csv", ["file", "status", "error", "seconds"])

    def compute(items):
        name = items[0][0].name
        with counter:
            active[0] += 1
            most[0] = max(most[0], active[0])
        niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        if name == "a.png":
            waited.append(b_done.wait(timeout=30))  # b's compute runs and ends while a's is still running
        with counter:
            active[0] -= 1
        if name == "b.png":
            rows_at_b.append(len(_rows(tmp_path / "out" / "results.csv")))  # none: a's come first
            b_done.set()
        batch.write_output(str(items[0][0]), written.append, name)
        return [{"file": str(f), "status": "ok", "error": "", "seconds": "0"} for f, _ in items]

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    summary = batch.run_batch([tmp_path / "in"], table, lambda f: f, compute, batch_size=1, overlap=True, computes=2)
    assert summary.ok == 5 and waited == [True] and rows_at_b == [0] and most[0] == 2 and niceness == {before}
    assert sorted(written) == names
    assert [Path(r["file"]).name for r in _rows(tmp_path / "out" / "results.csv")] == names


def test_a_serial_run_computes_two_at_once_only_where_the_step_allows(monkeypatch, tmp_path):
    """``run_files`` asks ``run_batch`` for ``SERIAL_COMPUTES`` computes where the step is ``concurrent`` and for one
    otherwise, with torch's threads shared between them (``serial_threads``); the verbs' steps are concurrent with
    a reentrant network and the saliency on the CPU only (``commands.common.computes_concurrently``)."""
    import torch

    from plqa_nb import batch, scale
    from plqa_nb.commands.common import computes_concurrently
    from plqa_nb.pipeline import Explainer

    seen, walked = [], []

    def run_batch(*args, computes, pending, **kwargs):
        seen.append((computes, torch.get_num_threads()))
        walked.append(pending)  # run_files's own walk, not walked again
        return batch.BatchSummary(0, 0, 0, 0, tmp_path)

    monkeypatch.setattr(scale, "run_batch", run_batch)

    class Step:
        def __init__(self, concurrent):
            self.concurrent = concurrent
            self.prepare = self.compute = None

    table = batch.ResultTable(tmp_path / "results.csv", ["file", "status", "error", "seconds"])
    _empty_files(tmp_path / "in", ["a.jpg"])  # a file to do (run_batch above never reads it)
    for concurrent in (True, False):
        scale.run_files([tmp_path / "in"], table, lambda: Step(concurrent))
    assert seen == [(scale.SERIAL_COMPUTES, serial_threads(scale.SERIAL_COMPUTES)), (1, serial_threads(1))]
    assert walked == [([tmp_path / "in" / "a.jpg"], [tmp_path / "in" / "a.jpg"])] * 2
    # a run with nothing left to do builds no step (no model load) and starts no cluster
    table.append([{"file": str(tmp_path / "in" / "a.jpg"), "status": "ok", "error": "", "seconds": "1"}])
    table = batch.ResultTable(table.path, table.columns)  # resumed

    def no_step():
        raise AssertionError("a step was built")

    for options in ({}, {"workers": 2}):
        summary = scale.run_files([tmp_path / "in"], table, no_step, **options)
        assert (summary.total, summary.skipped, summary.ok, summary.errors) == (1, 1, 0, 0)
    assert len(seen) == 2
    assert serial_threads(2) == max(1, (scale.available_cores() - 1) // 2)
    explainer = Explainer()
    assert explainer.backbone.reentrant and computes_concurrently(explainer)
    assert not computes_concurrently(Explainer(explainer.backbone, method="integrated_gradients"))


def test_a_worker_prepares_the_next_batch_while_the_network_runs(tmp_path):
    """On a worker with several task threads (``TASK_THREADS``) one batch is prepared while another's compute, the
    network pass, runs; the computes take turns (``scale.run_batch_on_worker``), and each batch's files are written
    and its rows returned as in a serial run."""
    import threading

    from plqa_nb import batch, scale

    in_compute, prepared_beside = threading.Event(), threading.Event()
    counter, active, most, waited, written = threading.Lock(), [0], [0], [], []

    class Step:
        def prepare(self, file):
            if in_compute.is_set():
                prepared_beside.set()
            return file

        def compute(self, items):
            with counter:
                active[0] += 1
                most[0] = max(most[0], active[0])
            in_compute.set()
            waited.append(prepared_beside.wait(timeout=30))  # False if preparing had to wait for this compute
            with counter:
                active[0] -= 1
            for f, _ in items:
                batch.write_output(str(f), written.append, f.name)
            return [{"file": str(f), "status": "ok", "error": "", "seconds": 0.0} for f, _ in items]

    key = f"test-{tmp_path.name}"
    results = {}

    def run(name: str) -> None:
        results[name] = scale.run_batch_on_worker(key, Step, [tmp_path / name], False, None)

    first = threading.Thread(target=run, args=("a.png",))
    first.start()
    assert in_compute.wait(timeout=30)
    second = threading.Thread(target=run, args=("b.png",))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    assert waited == [True, True] and most[0] == 1
    assert sorted(written) == ["a.png", "b.png"]
    assert [[r["file"] for r in results[n].rows] for n in ("a.png", "b.png")] == \
        [[str(tmp_path / "a.png")], [str(tmp_path / "b.png")]]


def test_bench_scaling_rounds_judge_by_the_median_of_side_by_side_ratios(monkeypatch):
    """`plqa bench --scaling --rounds R`: each round's serial run is set against the network alone measured right
    before and right after it, and each worker count against the mean of the same round's serial runs before and
    after the workers' (a steady drift within the round cancels); the verdicts are the medians of the rounds'
    ratios, so that the machine's drift between rounds cancels too."""
    from plqa_nb import bench

    speeds = iter([100.0, 80.0, 50.0, 70.0, 90.0, 110.0])  # maps/s before and after each round's serial run
    serial = iter([45.0, 40.0, 50.0])
    again = iter([1.2, 0.8, 1.0])  # the second serial run's files/s over the first's: their mean 1.1, 0.9, 1.0 × s
    monkeypatch.setattr(bench, "plq_throughput", lambda *a, **k: [{"faces_per_s": next(speeds)}])

    def one_round(inputs, work, max_workers, batch_size, detector, map_only, log):
        s, a = next(serial), next(again)
        serial_run = {"workers": 0, "files": 8, "wall_s": 1.0, "files_per_s": 8.0, "steady_files_per_s": s,
                      "steady_cpu_ms_per_file": 40.0, "steady_cores": 1.8,
                      "client_peak_mb": 1.0, "worker_peak_mb": None, "stage_wall_s": 0.5,
                      "stage_ms_per_file": {"network": 1.0}, "stage_share": {"network": 1.0}}
        # files/s (1 + a) / 2 * s * (0.8 + n / 10): over the serial runs' mean, 0.8 + n / 10 in every round
        runs = [serial_run] + [{"workers": n, "files": 8, "wall_s": 1.0, "files_per_s": 8.0,
                                "steady_files_per_s": (1 + a) / 2 * s * (0.8 + n / 10),
                                "steady_cpu_ms_per_file": 40.0 + n * s / 10, "steady_cores": 1.9,
                                "client_peak_mb": 1.0, "worker_peak_mb": 1.0, "efficiency": 1.0} for n in (1, 2)]
        return runs + [dict(serial_run, steady_files_per_s=a * s, again=True)], map_only()

    monkeypatch.setattr(bench, "_scaling_runs", one_round)
    result = bench.scaling_table(["x"], "unused", 2, rounds=3)
    assert [r["serial_over_map_only"] for r in result["rounds"]] == pytest.approx([0.5, 2 / 3, 0.5])
    assert result["serial_over_map_only"] == pytest.approx(0.5)
    assert result["workers_over_serial"] == pytest.approx({"1": 0.9, "2": 1.0})
    assert [r["serial_again_over_serial"] for r in result["rounds"]] == pytest.approx([1.2, 0.8, 1.0])
    assert [r["workers_over_serial"]["2"] for r in result["rounds"]] == pytest.approx([1.0] * 3)
    assert result["map_only_faces_per_s"] == pytest.approx(90.0) and result["runs"][0]["steady_files_per_s"] == 45.0
    table = bench.format_scaling(result)
    # CPU per file over serial: 1 + n * s / 400 for s = 45, 40, 50
    assert result["cpu_per_file_over_serial"] == pytest.approx({"1": 1.1125, "2": 1.225})
    assert "3 rounds" in table and "| 2 | 40.0 | 50.0, 70.0 | 67% | 0.80 | 0.90 | 1.00 | 1.10 | 1.20 |" in table
    assert "median of the rounds: serial / network alone 50%" in table
    assert "CPU per file against serial: --workers 1 1.11; --workers 2 1.23" in table


def test_steady_rate_leaves_out_the_start_the_first_burst_and_the_tail():
    """``TracedRun.steady_files_per_s`` and ``steady_cpu``: the middle 80 % of the rows. A cluster's first rows can
    arrive together (batches finished out of order wait for the first), and the last batches run on fewer workers;
    the CPU of the start-up and of the tail is left out too."""
    from plqa_nb.bench import Sample, TracedRun

    samples = [Sample(t, 0, 1.0, 1.0, 4.0 * t) for t in (0.0, 5.0)]  # start-up, 4 cores busy
    # a burst of 30 rows, then 10 rows a second on 1.5 cores
    samples += [Sample(5.0 + k, 30 + 10 * k, 1.0, 1.0, 20.0 + 1.5 * k) for k in range(7)]
    samples += [Sample(12.0, 95, 1.0, 1.0, 30.0), Sample(20.0, 100, 1.0, 1.0, 31.0)]  # the tail
    run = TracedRun(20.0, samples)
    assert run.steady_files_per_s() == pytest.approx(10.0)
    assert run.steady_cpu() == pytest.approx((150.0, 1.5))  # 1.5 CPU seconds per 10 rows, per second
    short = TracedRun(1.0, [Sample(0.0, 0, 1.0, 1.0, 0.0), Sample(1.0, 1, 1.0, 1.0, 1.0)])
    assert short.steady_files_per_s() is None and short.steady_cpu() is None
