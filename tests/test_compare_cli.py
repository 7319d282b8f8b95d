"""`plqa compare` end to end on two real faces and a broken file: rows, arrays, figures, resume, settings."""
import csv
import shutil

import numpy as np
import pytest

from plqa_nb.cli import main
from plqa_nb.evaluation import spearman_matrix

FAST = ["--steps", "2", "--random", "2", "--infidelity", "2"]  # the default model, short curves


def _rows(out):
    with open(out / "faithfulness.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(faces_dir, tmp_path_factory):
    src = tmp_path_factory.mktemp("in")
    for name in ("001.jpg", "002.jpg"):
        shutil.copy(faces_dir / "london" / "neutral" / name, src / name)
    (src / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path_factory.mktemp("out")
    assert main(["compare", str(src), "--out", str(out), "--methods", "saliency", "grad-cam", *FAST]) == 0
    return src, out


def test_rows_per_file_and_method_with_documented_columns(run):
    src, out = run
    rows = _rows(out)
    ok = [r for r in rows if r["status"] == "ok"]
    err = [r for r in rows if r["status"] != "ok"]
    assert len(ok) == 4 and {(r["file"].split("/")[-1], r["method"]) for r in ok} == {
        (f, m) for f in ("001.jpg", "002.jpg") for m in ("saliency", "grad-cam")}
    assert len(err) == 1 and "broken.jpg" in err[0]["error"]
    for c in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc", "seconds",
              "infidelity", "quality"):
        assert all(np.isfinite(float(r[c])) for r in ok), c
    z = np.load(out / ok[0]["output"])
    assert z["attribution"].shape == (3, 150, 150) and z["view"].shape == (150, 150)
    assert z["deletion"].shape == (3,) and float(z["deletion_auc"]) == pytest.approx(float(ok[0]["deletion_auc"]), abs=1e-6)  # the CSV keeps 6 decimals
    assert all((out / r["figure"]).is_file() for r in ok)
    for name in ("summary.png", "summary.md", "summary.csv", "spearman.csv"):
        assert (out / name).is_file(), name
    with open(out / "spearman.csv") as f:
        sp = list(csv.DictReader(f))
    assert len(sp) == 2
    for r in sp:  # the rank correlation of the two saved maps of that face
        maps = {m["method"]: np.load(out / m["output"])["saliency"] for m in ok if m["file"] == r["file"]}
        expected = spearman_matrix(np.stack([maps[r["method_a"]], maps[r["method_b"]]]))[0, 1]
        assert float(r["spearman"]) == pytest.approx(expected, abs=1e-5)


def test_rerun_adds_only_the_missing_method_and_keeps_outputs(run):
    src, out = run
    before = {p: p.read_bytes() for p in (out / "maps").rglob("*.npz")}
    assert main(["compare", str(src), "--out", str(out), "--methods", "saliency", "grad-cam", "input-x-gradient",
                 *FAST]) == 0
    rows = [r for r in _rows(out) if r["status"] == "ok"]
    assert len(rows) == 6 and sum(r["method"] == "input-x-gradient" for r in rows) == 2
    assert all(p.read_bytes() == data for p, data in before.items())


def test_other_settings_need_overwrite(run, capsys):
    src, out = run
    capsys.readouterr()
    assert main(["compare", str(src), "--out", str(out), "--methods", "saliency", *FAST[:-2], "--steps", "3"]) == 2
    assert "holds results of other settings {'steps': (2, 3)" in capsys.readouterr().err


def test_road_columns_with_road_and_empty_without(run, faces_dir, tmp_path):
    _, out = run
    assert all(r["road_morf_auc"] == "" for r in _rows(out) if r["status"] == "ok")  # off by default
    road = tmp_path / "road"
    assert main(["compare", str(faces_dir / "london" / "neutral" / "001.jpg"), "--out", str(road), "--methods",
                 "saliency", *FAST, "--road"]) == 0
    (row,) = _rows(road)
    values = [float(row[c]) for c in ("road_morf_auc", "road_lerf_auc", "random_road_morf_auc", "random_road_lerf_auc")]
    assert all(0.0 <= v <= 1.0 for v in values)
    with open(road / "summary.csv") as f:
        (summary,) = list(csv.DictReader(f))
    assert float(summary["road_morf_auc"]) == pytest.approx(values[0], abs=1e-4)  # the summary keeps 4 decimals
