"""Throughput and client memory of `plqa explain --workers N` against the serial run.

1. `plqa explain` over the London neutral photos, serially and with ``--workers N``: wall time and files/s
   (imports, model loads and cluster start included);
2. the same photos under ``--copies`` × 102 names (hard links in WORK/links where the filesystem allows, else
   copies; not symlinks, which the file walk counts once since they resolve to one file) through
   ``--workers N``: the client's resident memory sampled every 0.2 s while rows arrive, its peak over the first
   and over the last thousand rows (and the workers' peak), and files/s; with ``--kill-worker-at ROWS``, one
   worker is SIGKILLed once the table holds ROWS rows, and the run must still end with one row per file, every
   file's outputs and no temporary left;
3. every row of the large run against the serial row of its photo (Q̂ and raw Q within THREADS_QUALITY_ATOL;
   numbers of the feedback text within FEEDBACK_NUMBER_ATOL; the other columns but ``seconds`` equal), and the
   arrays of ``--sample`` files chosen with ``--seed``: the crops' and PLQ maps' largest differences, and how
   many files differ. With ``--threads`` every run (serial too) uses that many torch threads, and the crops must be
   equal, PLQ within PATH_PLQ_ATOL and saliency within PATH_SALIENCY_REL of its maximum. Without it the serial
   run has its default (the cores but one) and each worker the cores split between the workers: other thread
   counts move MTCNN's landmarks in their last bits, which moves some crop pixels by a grey level and the maps
   with them.

With ``--erc``, instead: `plqa evaluate erc` over the London photos laid out as a dataset (one folder per
person, the neutral and the smiling photo under ``--copies`` names each, so 204 × copies images) through
``--workers N``: wall time, files/s, and the client's peak memory over the first and the last thousand rows of
images.csv and over the whole command (the pairs' comparison included). The copies make the error figures
meaningless; only the time and memory are measured.

Usage: python research/measure_scale.py --work /tmp/scale [--faces DIR] [--copies 20] [--workers 2]
       [--kill-worker-at ROWS] [--large-only | --compare-only | --erc]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from plqa_nb.batch import is_temporary  # noqa: E402
from plqa_nb.bench import TracedRun, dask_workers, traced_run  # noqa: E402
from tolerances import (FEEDBACK_NUMBER_ATOL, PATH_PLQ_ATOL, PATH_SALIENCY_REL, THREADS_QUALITY_ATOL,  # noqa: E402
                        max_relative, same_text_but_numbers)


def rows(table: Path) -> list[dict]:
    with open(table) as f:
        return list(csv.DictReader(f))


def link(src: Path, dest: Path) -> None:
    """``dest`` as a hard link to ``src`` (a copy on another filesystem); kept if it exists."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another filesystem
        shutil.copyfile(src, dest)


def memory_line(trace: TracedRun, total: int) -> str:
    """The client's peak resident memory over the first and the last thousand rows (while rows arrive), over the
    whole command, and the largest worker's."""
    first = [s for s in trace.samples if s.rows < 1000]
    last = [s for s in trace.samples if total - 1000 <= s.rows < total]
    peak = max(s.client_mb for s in trace.samples)
    return (f"client peak RSS {max(s.client_mb for s in first):.0f} MiB over the first 1000 rows, "
            f"{max(s.client_mb for s in last):.0f} MiB over the last 1000, {peak:.0f} MiB over the whole command; "
            f"largest worker peak {max(s.worker_mb for s in trace.samples):.0f} MiB")


def erc_run(args: argparse.Namespace, bs: list) -> None:
    """``plqa evaluate erc`` over the London photos as a dataset of 102 identities × 2 × ``args.copies`` images."""
    london = args.faces / "london"
    dataset, out = args.work / "erc-set", args.work / "erc"
    for expression in ("neutral", "smiling"):
        for photo in sorted((london / expression).glob("*.jpg")):
            for k in range(args.copies):
                link(photo, dataset / photo.stem / f"{expression}{k:03d}.jpg")
    total = sum(1 for _ in dataset.rglob("*.jpg"))
    shutil.rmtree(out, ignore_errors=True)  # an earlier run's table would count as rows from the start
    trace = traced_run(["evaluate", "erc", dataset, "--out", out, *bs, "--workers", args.workers],
                       out / "images.csv")
    (args.work / "erc-trace.json").write_text(json.dumps({"wall_s": trace.wall_s, "samples": trace.samples}))
    got = rows(out / "images.csv")
    assert len(got) == total and len({r["file"] for r in got}) == total, "one row per image"
    print(f"plqa evaluate erc over {total} images ({len({r['identity'] for r in got})} identities) through --workers "
          f"{args.workers}: {trace.wall_s:.1f} s ({total / trace.wall_s:.2f} files/s, {trace.steady_files_per_s():.2f}"
          f" over the middle 80 % of the rows); {memory_line(trace, total)}; "
          f"{sum(r['status'] != 'ok' for r in got)} failed; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (links and outputs)")
    ap.add_argument("--faces", type=Path, default=Path(os.environ.get("PLQA_FACES") or REPO.parent / "shared/faces"))
    ap.add_argument("--copies", type=int, default=20, help="names per photo in the large run (default 20)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sample", type=int, default=50, help="files whose arrays are compared (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of every run, serial and workers (default: the serial run the cores but one, "
                         "the workers the cores split between them)")
    ap.add_argument("--kill-worker-at", type=int, default=None, metavar="ROWS",
                    help="SIGKILL one worker of the large run once its table holds ROWS rows")
    ap.add_argument("--large-only", action="store_true", help="skip step 1, reuse WORK/serial of an earlier run")
    ap.add_argument("--compare-only", action="store_true", help="only step 3, on the outputs of an earlier run")
    ap.add_argument("--erc", action="store_true", help="only `plqa evaluate erc` over a dataset of copies")
    args = ap.parse_args()
    neutral = args.faces / "london" / "neutral"
    photos = sorted(neutral.glob("*.jpg"))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    bs = ["--batch-size", args.batch_size, "--overwrite"] + (["--threads", args.threads] if args.threads else [])
    if args.erc:
        erc_run(args, bs)
        return

    n = len(photos)
    if not (args.large_only or args.compare_only):
        serial = traced_run(["explain", neutral, "--out", work / "serial", *bs], work / "serial/results.csv").wall_s
        dist = traced_run(["explain", neutral, "--out", work / "workers", *bs, "--workers", args.workers],
                          work / "workers/results.csv").wall_s
        print(f"{n} London neutral photos: serial {serial:.1f} s ({n / serial:.2f} files/s), --workers "
              f"{args.workers} {dist:.1f} s ({n / dist:.2f} files/s), speed-up {serial / dist:.2f}; load average "
              f"{os.getloadavg()[0]:.1f}")

    total, big = args.copies * n, work / "big"
    if not args.compare_only:
        links = work / "links"
        for k in range(args.copies):
            for p in photos:
                link(p, links / f"copy{k:03d}" / p.name)
        killed: dict = {}

        def kill_a_worker(process, rows_written: int) -> None:
            if args.kill_worker_at is not None and not killed and rows_written >= args.kill_worker_at:
                workers = dask_workers(process)
                if workers:
                    workers[0].kill()
                    killed.update(pid=workers[0].pid, rows=rows_written)

        shutil.rmtree(big, ignore_errors=True)  # an earlier run's table would count as rows from the start
        trace = traced_run(["explain", links, "--out", big, *bs, "--workers", args.workers], big / "results.csv",
                           watch=kill_a_worker)
        (work / "big-trace.json").write_text(json.dumps({"wall_s": trace.wall_s, "samples": trace.samples}))
        print(f"{total} linked files through --workers {args.workers}: {trace.wall_s:.1f} s "
              f"({total / trace.wall_s:.2f} files/s, {trace.steady_files_per_s():.2f} over the middle 80 % of the "
              f"rows); {memory_line(trace, total)}; load average {os.getloadavg()[0]:.1f}")
        if args.kill_worker_at is not None:
            assert killed, "the run ended before the kill: give a smaller --kill-worker-at"
            print(f"worker {killed['pid']} SIGKILLed when the table held {killed['rows']} rows")

    ref = {Path(r["file"]).name: r for r in rows(work / "serial" / "results.csv")}
    got = rows(big / "results.csv")
    assert len(got) == total and len({r["file"] for r in got}) == total, "one row per file"
    missing = [r["output"] for r in got for o in (big / r["output"], (big / r["output"]).with_suffix(".png"))
               if not o.is_file()]
    left = [p for p in big.rglob("*") if is_temporary(p.name)]
    print(f"{total} rows, one per file; outputs missing: {len(missing)}; temporaries left: {len(left)}")
    assert not missing and not left
    worst, moved, differ = 0.0, 0, []
    for r in got:
        s = ref[Path(r["file"]).name]
        worst = max(worst, *(abs(float(r[c]) - float(s[c])) for c in ("quality", "quality_raw")))
        moved += r["feedback"] != s["feedback"]
        differ += [(r["file"], c) for c in r if c not in ("file", "output", "seconds", "quality", "quality_raw")
                   and not (r[c] == s[c] or c == "feedback"
                            and same_text_but_numbers(r[c], s[c], FEEDBACK_NUMBER_ATOL))]
    print(f"all {total} rows against serial: largest |ΔQ̂| or |ΔQ| {worst:.2g} (bound {THREADS_QUALITY_ATOL:g}); "
          f"feedback text with a number one rounding step off: {moved}; other differences: {differ or 'none'}")
    assert worst <= THREADS_QUALITY_ATOL and not differ
    sample = random.Random(args.seed).sample(got, min(args.sample, total))
    crop = plq = sal = 0.0
    moved_crops = 0
    for r in sample:
        a, b = np.load(big / r["output"]), np.load(work / "serial" / ref[Path(r["file"]).name]["output"])
        d = float(np.abs(a["crop"].astype(np.int16) - b["crop"]).max())
        crop, moved_crops = max(crop, d), moved_crops + (d > 0)
        plq = max(plq, float(np.abs(a["plq"] - b["plq"]).max()))
        sal = max(sal, max_relative(a["saliency"], b["saliency"]))
    print(f"{len(sample)} sampled files: crops differ in {moved_crops} (by at most {crop:.0f} grey levels); PLQ max "
          f"|Δ| {plq:.2g} (bound {PATH_PLQ_ATOL:g}); saliency max relative Δ {sal:.2g} (bound {PATH_SALIENCY_REL:g})")
    if args.threads:
        assert crop == 0 and plq <= PATH_PLQ_ATOL and sal <= PATH_SALIENCY_REL

if __name__ == "__main__":
    main()
