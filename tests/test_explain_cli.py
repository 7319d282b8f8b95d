"""`plqa explain` on the whole London set: rows, arrays, verification AUC through our own detection and alignment."""
import csv

import numpy as np
import pytest

from plqa_nb.cli import main
from plqa_nb.verification import equal_error_rate, pair_scores, roc_auc


@pytest.fixture(scope="module")
def london_run(faces_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("london")
    code = main(["explain", str(faces_dir / "london"), "--out", str(out), "--quality", "serfiq",
                 "--batch-size", "16"])
    assert code == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return out, rows


def test_one_row_per_photo_with_the_documented_columns(london_run):
    out, rows = london_run
    assert len(rows) == 204
    assert {"file", "status", "error", "output", "quality", "quality_raw", "backbone", "quality_method",
            "attribution", "faces_found", "seconds"} <= set(rows[0])
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"]
    assert len({r["output"] for r in rows}) == 204  # neutral/001 and smiling/001 do not collide
    assert {r["backbone"] for r in rows} == {"dlib-resnet"} and {r["quality_method"] for r in rows} == {"serfiq"}


def test_documented_arrays(london_run):
    out, rows = london_run
    for r in rows[:5]:
        z = np.load(out / r["output"])
        assert z["crop"].dtype == np.uint8 and z["crop"].shape == (150, 150, 3)
        assert z["plq"].dtype == np.float32 and z["plq"].shape == (150, 150)
        assert 0 <= z["plq"].min() and z["plq"].max() <= 1
        assert z["saliency"].dtype == np.float32 and z["embedding"].shape == (128,)
        assert float(z["quality"]) == pytest.approx(float(r["quality"]), abs=1e-6)
        assert (out / r["output"].replace(".npz", ".png")).is_file()


def test_london_verification(london_run):
    out, rows = london_run
    emb = {r["file"].split("london/")[1]: np.load(out / r["output"])["embedding"] for r in rows}
    ids = sorted(k.split("/")[1] for k in emb if k.startswith("neutral/"))
    a = np.stack([emb[f"neutral/{i}"] for i in ids])
    b = np.stack([emb[f"smiling/{i}"] for i in ids])
    genuine, impostor = pair_scores(a, b)
    auc, eer = roc_auc(genuine, impostor), equal_error_rate(genuine, impostor)
    print(f"London neutral vs smiling: {len(genuine)} genuine, {len(impostor)} impostor pairs, "
          f"ROC AUC {auc:.4f}, EER {eer:.4f}")
    assert auc >= 0.99


def test_rerun_resumes_without_touching_outputs(london_run, faces_dir):
    out, rows = london_run
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["explain", str(faces_dir / "london" / "neutral"), "--out", str(out), "--quality", "serfiq"]) == 0
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
