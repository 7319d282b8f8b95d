"""`plqa evaluate erc` end to end on London references and degraded probes: outputs, failures, resume, pairs."""
import csv
import math

import numpy as np
import pytest

from plqa_nb.batch import atomic_save_png
from plqa_nb.cli import main
from plqa_nb.commands.evaluate import RUN_COLUMNS
from plqa_nb.evaluation.erc import CONVENTIONS, ERC_COLUMNS, SUMMARY_COLUMNS
from plqa_nb.evaluation.pairs import build_probe_dataset
from tolerances import THREADS_QUALITY_ATOL

IDS = [f"{i:03d}" for i in range(1, 9)]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(faces_dir, tmp_path_factory):
    """8 identities: the smiling photo as is, the neutral one degraded (seed 0), and a wall with no face in 003."""
    root = tmp_path_factory.mktemp("erc") / "data"
    london = faces_dir / "london"
    build_probe_dataset([(i, london / "smiling" / f"{i}.jpg", london / "neutral" / f"{i}.jpg") for i in IDS], root,
                        seed=0, max_side=256)
    wall = np.tile(np.linspace(60, 200, 200).astype(np.uint8)[None, :, None], (200, 1, 3))
    atomic_save_png(root / "003" / "wall.png", wall)
    return root


@pytest.fixture(scope="module")
def default_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, main(["evaluate", "erc", str(dataset), "--out", str(out)])


def test_outputs_columns_and_baselines(default_run, capsys):
    out, rc = default_run
    assert rc == 0
    for name in ("erc.csv", "summary.csv", "erc.png", "images.csv"):
        assert (out / name).is_file(), name
    summary = _csv(out / "summary.csv")
    assert list(summary[0]) == SUMMARY_COLUMNS + RUN_COLUMNS
    methods = [r["quality_method"] for r in summary]
    images = _csv(out / "images.csv")
    assert methods[1:] == ["random", "oracle"] and f"q_{methods[0]}" in images[0]  # the backbone's default
    by = {r["quality_method"]: r for r in summary}
    assert all(r["convention"] == "fixed" for r in summary)
    assert len({(r["fnmr_reject_0"], r["threshold"], r["genuine"], r["impostor"]) for r in summary}) == 1
    erc = _csv(out / "erc.csv")
    assert list(erc[0]) == ERC_COLUMNS and len(erc) == 3 * 51
    assert [r["reject_fraction"] for r in erc[:51]] == [f"{k / 100:.2f}" for k in range(51)]
    fnmr0 = float(by["oracle"]["fnmr_reject_0"])
    oracle = [r for r in erc if r["quality_method"] == "oracle"]
    # the oracle discards the genuine non-matches first: FNMR 0 once their share is discarded
    assert all(float(r["fnmr"]) == 0 for r in oracle if float(r["reject_fraction"]) >= fnmr0)
    if fnmr0 > 0:  # the oracle's stepwise pAUC is the lowest possible
        for m in (methods[0], "random"):
            assert float(by["oracle"]["pauc_20"]) <= float(by[m]["pauc_20"]) + 1e-9
    else:
        assert math.isnan(float(by["oracle"]["pauc_20"]))
    assert 0 <= float(by[methods[0]]["ece"]) <= 1 and by["random"]["ece"] == "nan"


def test_failed_image_is_reported_and_its_pairs_dropped(default_run, capsys):
    out, _ = default_run
    (row,) = [r for r in _csv(out / "images.csv") if r["file"].endswith("003/wall.png")]
    assert row["status"] == "error" and "no face" in row["error"]
    s = _csv(out / "summary.csv")[0]
    assert int(s["images"]) == 17 and int(s["failed_images"]) >= 1
    assert int(s["dropped_pairs"]) >= 16  # the wall with each of the 16 photos
    assert int(s["genuine"]) + int(s["impostor"]) + int(s["dropped_pairs"]) == 17 * 16 // 2
    assert s["impostor_selection"].startswith("all ")


def test_rerun_resumes_and_recompute_convention_is_labelled(dataset, default_run, capsys):
    out, _ = default_run
    npz = sorted((out / "embeddings").rglob("*.npz"))
    before = {p: p.stat().st_mtime_ns for p in npz}
    capsys.readouterr()
    assert main(["evaluate", "erc", str(dataset), "--out", str(out), "--threshold", "recompute"]) == 0
    io = capsys.readouterr()
    assert "0 ok" in io.err and f"{len(npz)} already done" in io.err  # only the failed wall is tried again
    assert "wall.png: no face found" in io.out and CONVENTIONS["recompute"] in io.out
    assert {p: p.stat().st_mtime_ns for p in npz} == before
    assert {r["convention"] for r in _csv(out / "summary.csv")} == {"recompute"}
    assert {r["convention"] for r in _csv(out / "erc.csv")} == {"recompute"}


def test_pairs_list_with_two_estimators(dataset, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,same\n001/reference.png,002/reference.png,0\n002/reference.png,004/reference.png,0\n"
                     "001/reference.png,004/reference.png,0\n004/reference.png,004/probe.png,1\n"
                     "003/reference.png,003/wall.png,1\n")
    out = tmp_path / "out"
    assert main(["evaluate", "erc", str(dataset), "--pairs", str(pairs), "--out", str(out),
                 "--quality", "ers", "serfiq"]) == 0
    images = _csv(out / "images.csv")
    assert len(images) == 6 and {"q_ers", "q_serfiq", "raw_ers", "raw_serfiq"} <= set(images[0])
    summary = _csv(out / "summary.csv")
    assert [r["quality_method"] for r in summary] == ["ers", "serfiq", "random", "oracle"]
    s = summary[0]
    assert s["impostor_selection"] == "listed in pairs.csv" and s["dropped_pairs"] == "1"  # the wall's pair
    ok = {r["file"].split("data/")[-1] for r in images if r["status"] == "ok"}
    assert int(s["genuine"]) == ("004/probe.png" in ok) and int(s["impostor"]) == 3


def test_bad_pairs_list_names_file_and_line(dataset, tmp_path, capsys):
    pairs = tmp_path / "bad.csv"
    pairs.write_text("a,b,same\n001/reference.png,002/reference.png,0\n001/reference.png,009/missing.png,1\n")
    assert main(["evaluate", "erc", str(dataset), "--pairs", str(pairs), "--out", str(tmp_path / "o")]) == 2
    assert "bad.csv, line 3" in capsys.readouterr().err
    pairs.write_text("left,right,same\n")
    assert main(["evaluate", "erc", str(dataset), "--pairs", str(pairs), "--out", str(tmp_path / "o")]) == 2
    assert "missing column(s) a, b" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_give_the_serial_image_table(dataset, default_run, tmp_path):
    serial, code = default_run
    assert code == 0
    out = tmp_path / "workers"
    assert main(["evaluate", "erc", str(dataset), "--out", str(out), "--workers", "2"]) == 0  # 1 torch thread each
    # the serial table's order may have changed: the resume test above reran into it
    a, b = {r["file"]: r for r in _csv(serial / "images.csv")}, _csv(out / "images.csv")
    assert [r["file"] for r in b] == sorted(a)  # the dataset's file order: identities, then files, sorted
    for rb in b:
        ra = a[rb["file"]]
        for c in ra:
            if c.startswith(("q_", "raw_")) and ra[c]:
                assert abs(float(rb[c]) - float(ra[c])) <= THREADS_QUALITY_ATOL, (ra["file"], c)
            elif c != "seconds":
                assert rb[c] == ra[c], (ra["file"], c)
    assert any(r["status"] == "error" and r["file"].endswith("wall.png") for r in b)  # error rows in place too
    assert (out / "summary.csv").is_file() and (out / "erc.png").is_file()
