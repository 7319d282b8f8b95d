"""The verbs with the shipped default model (no --quality): `plqa explain` on the whole London set (rows,
arrays, the verification figures of docs/results/verification.md through our own detection and alignment),
`plqa quality` and `plqa calibrate`."""
import csv

import numpy as np
import pytest

from plqa_nb.cli import main
from plqa_nb.config import resolve_config
from plqa_nb.verification import equal_error_rate, pair_scores, roc_auc


@pytest.fixture(scope="module")
def london_run(faces_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("london")
    code = main(["explain", str(faces_dir / "london"), "--out", str(out), "--batch-size", "16"])
    assert code == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return out, rows


def test_the_png_outlines_the_flagged_part(london_run):
    """Each face's PNG (crop | PLQ map) outlines the flagged part in ``OUTLINE_RGB`` on both panels, and carries no
    outline when nothing stands out."""
    import cv2

    from plqa_nb.figures import OUTLINE_RGB

    out, rows = london_run
    flagged = [r for r in rows if r["flagged_region"]]
    assert 0 < len(flagged) < len(rows)  # compliant studio photos: most have nothing to change, some do
    for r in flagged[:5] + [r for r in rows if not r["flagged_region"]][:5]:
        png = cv2.imread(str(out / r["output"].replace(".npz", ".png")))[..., ::-1]
        blue = np.all(png == OUTLINE_RGB, axis=-1)
        half = png.shape[1] // 2
        if r["flagged_region"]:
            assert blue[:, :half].sum() > 50 and blue[:, half:].sum() > 50, r["file"]
        else:
            assert not blue.any(), r["file"]


def test_one_row_per_photo_with_the_documented_columns(london_run):
    out, rows = london_run
    assert len(rows) == 204
    assert {"file", "status", "error", "output", "quality", "quality_raw", "backbone", "quality_method",
            "attribution", "faces_found", "flagged_region", "feedback", "seconds"} <= set(rows[0])
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"]
    assert len({r["output"] for r in rows}) == 204  # neutral/001 and smiling/001 do not collide
    default = resolve_config()
    assert {r["backbone"] for r in rows} == {default.backbone}
    assert {r["quality_method"] for r in rows} == {default.quality}
    for r in rows:  # the feedback names the flagged region, or says that nothing stands out
        assert r["flagged_region"] in ("", "eyes", "nose", "mouth", "forehead", "cheeks")
        opening = "Nothing stands out" if r["flagged_region"] == "" else f"Change the {r['flagged_region']} first"
        assert r["feedback"].startswith(opening) and f"Detail: Q̂ {float(r['quality']):.2f}" in r["feedback"]
    # compliant studio photos: mostly nothing to change (the norm lets 25 % of unseen compliant faces flag a
    # region; measured on the held-out neutral half: 76 %)
    neutral = [r["flagged_region"] == "" for r in rows if "/neutral/" in r["file"]]
    print(f"nothing flagged on {np.mean(neutral):.0%} of the London neutral photos")
    assert np.mean(neutral) >= 0.6


def test_documented_arrays(london_run):
    out, rows = london_run
    for r in rows[:5]:
        z = np.load(out / r["output"])
        assert z["crop"].dtype == np.uint8 and z["crop"].shape == (150, 150, 3)
        assert z["plq"].dtype == np.float32 and z["plq"].shape == (150, 150)
        assert 0 <= z["plq"].min() and z["plq"].max() <= 1
        assert z["saliency"].dtype == np.float32 and z["embedding"].shape == (128,)
        assert z["deviation"].shape == (150, 150) and z["deviation"].min() >= 0
        assert float(z["quality"]) == pytest.approx(float(r["quality"]), abs=1e-6)
        assert (out / r["output"].replace(".npz", ".png")).is_file()


@pytest.mark.numerics
def test_london_verification(london_run):
    out, rows = london_run
    emb = {r["file"].split("london/")[1]: np.load(out / r["output"])["embedding"] for r in rows}
    ids = sorted(k.split("/")[1] for k in emb if k.startswith("neutral/"))
    a = np.stack([emb[f"neutral/{i}"] for i in ids])
    b = np.stack([emb[f"smiling/{i}"] for i in ids])
    genuine, impostor = pair_scores(a, b)
    auc, eer = roc_auc(genuine, impostor), equal_error_rate(genuine, impostor)
    gap = genuine.min() - impostor.max()
    print(f"London neutral vs smiling: {len(genuine)} genuine, {len(impostor)} impostor pairs, "
          f"ROC AUC {auc:.4f}, EER {eer:.4f}, lowest genuine minus highest impostor similarity {gap:.5f}")
    # The figures of docs/results/verification.md. Measured on the three kernel sets: AUC 1.0000 and EER 0.0000,
    # perfect separation, but the weakest genuine pair lies only 0.0003 above the strongest impostor (printed
    # above). A CPU whose detector rounding moved one pair across would still pass these bounds and fail a published
    # claim of 1.0000 to 4 decimals only by a single comparison of the 1.05 million: AUC ≥ 0.9999, at most one of
    # 102 genuine pairs behind the EER point.
    assert auc >= 0.9999 and eer <= 1 / 102


def test_rerun_resumes_without_touching_outputs(london_run, faces_dir):
    out, rows = london_run
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["explain", str(faces_dir / "london" / "neutral"), "--out", str(out)]) == 0
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_quality_verb_gives_the_maps_qualities(london_run, faces_dir, tmp_path):
    """`plqa quality` (scores only) gives each photo the Q̂ that `plqa explain` stored with its map."""
    out, rows = london_run
    csv_path = tmp_path / "q.csv"
    assert main(["quality", str(faces_dir / "london" / "neutral"), "--out", str(csv_path)]) == 0
    with open(csv_path) as f:
        scores = {r["file"]: r for r in csv.DictReader(f)}
    assert len(scores) == 102 and all(r["status"] == "ok" for r in scores.values())
    explained = {r["file"]: float(r["quality"]) for r in rows}
    for file, r in scores.items():
        assert float(r["quality"]) == pytest.approx(explained[file], abs=1e-5)  # batch composition: rounding only
        assert r["quality_method"] == resolve_config().quality


def test_calibrate_verb_writes_a_bundle_the_other_verbs_take(faces_dir, tmp_path, capsys):
    """`plqa calibrate` (utility and ERS, utility target) on 8 smiling photos: the bundle names the network and its
    weights, holds the trained head and centre, and the command that made it; the match threshold is the shipped
    one's to within the spread of 8 faces; `--calibration` brings it back, `explain` flags with its norm; a second
    run refuses to overwrite without --overwrite, and `--check` compares a refit with the file."""
    import json

    from plqa_nb.config import shipped_bundle

    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(1, 9):
        (dev / f"{i:03d}.jpg").write_bytes((faces_dir / "london" / "smiling" / f"{i:03d}.jpg").read_bytes())
    path = tmp_path / "calib.json"
    args = ["calibrate", str(dev), "--estimators", "utility", "ers", "--folds", "4", "--out", str(path)]
    assert main(args) == 0
    record = json.loads(path.read_text())
    shipped = shipped_bundle("dlib-resnet")
    assert (record["schema_version"], record["backbone"], record["weights_sha1"], record["norm"], record["photos"]) == (
        1, "dlib-resnet", shipped.weights_sha1, shipped.norm, 8)
    assert record["default_estimator"] == "utility" and set(record["estimators"]) == {"utility", "ers"}
    assert record["made_with"].startswith(f"plqa calibrate {dev} --backbone dlib-resnet --estimators utility ers")
    assert record["dev_comparisons"] == 8 * 2 * 49  # 8 faces × 2 references × (1 clean + 48 degraded) probes
    assert abs(record["match_threshold"] - shipped.match_threshold) < 0.03
    utility = record["estimators"]["utility"]
    # a plausible range, not a tolerance: on 8 photos the fit is noisy (r 0.881, 0.843, 0.857 with the mtcnn,
    # yunet-mtcnn and yunet crops; the shipped 102-photo fit 0.930)
    assert utility["alpha"] > 10 and 0.8 < utility["r"] < 1.0 and 5 < utility["gamma"] < 20
    assert len(utility["state"]["head_weights"]) == 256 + 128 + 1 + 2  # features, unit embedding, log norm, h, s
    assert len(record["estimators"]["ers"]["state"]["ui_centre"]) == 128
    config = resolve_config(calibration=path)
    assert (config.alpha, config.r, config.gamma) == (utility["alpha"], utility["r"], utility["gamma"])
    capsys.readouterr()
    assert main(args) == 2
    assert "exists; use --overwrite" in capsys.readouterr().err
    assert main(args + ["--check"]) == 0  # the same photos and seed give the same bundle
    assert "as in" in capsys.readouterr().err
    assert main(args[:-2] + ["--seed", "1", "--out", str(path), "--check"]) == 1  # another seed: other degradations
    assert "DIFFERS" in capsys.readouterr().err
