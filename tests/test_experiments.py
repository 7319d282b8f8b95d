"""The paper's analyses as batch experiments (issue 5): regions, variants, masking, inpainting, ICAO, CLI."""
import csv
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from plqa_nb.batch import ResultTable
from plqa_nb.cli import main
from plqa_nb.commands.experiment import csv_columns
from plqa_nb.experiments import FaceCrop, icao, inpainting, masking, plots, table
from plqa_nb.experiments.feedback import NOTHING_STANDS_OUT, feedback, first_clause, opening
from plqa_nb.regions import (FACE_REGIONS, REGIONS, covered_regions, degraded_region, region_masks,
                                         region_means, saliency_shares, worst_region)
from plqa_nb.pipeline import Explainer


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def explainer():
    """The default model: the real dlib-resnet network and its default estimator."""
    return Explainer("dlib-resnet")


@pytest.fixture(scope="module")
def faces(faces_dir, explainer):
    """Two aligned London neutral faces as FaceCrop (name, crop, landmarks)."""
    out = []
    for name in ("001.jpg", "002.jpg"):
        p = explainer.prepare(faces_dir / "london" / "neutral" / name)
        out.append(FaceCrop(name, p.aligned.crop, p.aligned.landmarks))
    return out


# -- regions and feedback -----------------------------------------------------------------------------------
def test_regions_are_disjoint_and_sit_on_their_landmarks(faces):
    for face in faces:
        m = region_masks(face.landmarks, 150)
        stack = np.stack([m[k] for k in REGIONS])
        assert (stack.sum(0) <= 1).all() and np.array_equal(m["background"], ~m["face"])
        assert all(m[k].sum() > 50 for k in FACE_REGIONS)
        (lx, ly), (rx, ry), (nx, ny) = np.round(face.landmarks[:3]).astype(int)
        assert m["eyes"][ly, lx] and m["eyes"][ry, rx] and m["nose"][ny + 2, nx]
        mx, my = np.round(face.landmarks[3:].mean(0)).astype(int)
        assert m["mouth"][my, mx]
        assert np.argwhere(m["forehead"])[:, 0].max() < min(ly, ry) < np.argwhere(m["cheeks"])[:, 0].min()


def test_regions_follow_a_roll(faces):
    from plqa_nb.degradations import rotate

    face = faces[0]
    rolled, pts = rotate(face.crop, face.landmarks, 25.0, tuple(face.landmarks[:2].mean(0)))
    m = region_masks(pts, 150)
    for (x, y), region in zip(np.round(pts[:3]).astype(int), ("eyes", "eyes", "nose")):
        assert m[region][y, x]
    assert not np.array_equal(m["eyes"], region_masks(face.landmarks, 150)["eyes"])


def test_region_means_worst_region_and_feedback(faces):
    masks = region_masks(faces[0].landmarks, 150)
    plq = np.full((150, 150), 0.8)
    plq[masks["mouth"]] = 0.1
    plq[masks["background"]] = 0.0  # the background never counts as the worst face region
    means = region_means(plq, masks)
    assert means["mouth"] == pytest.approx(0.1) and means["eyes"] == pytest.approx(0.8)
    assert worst_region(means) == "mouth"
    text = feedback(means, 0.42)
    assert "the mouth" in text and "0.10" in text and f"{means['face']:.2f}" in text and "0.42" in text
    assert "then" not in text  # no other region is below the face's mean
    assert "the cheeks lost most" in feedback(means, 0.42, ("cheeks", 0.41)) and "×0.41" in feedback(
        means, None, ("cheeks", 0.41))


@pytest.mark.parametrize("flag, names", [(("eyes", 4.2), ["eyes"]), (("nose", 3.9), ["nose"]), (("", 1.1), []),
                                         (None, [])])
def test_feedback_opens_with_the_one_region_to_change(faces, flag, names):
    masks = region_masks(faces[0].landmarks, 150)
    plq = np.full((150, 150), 0.8)
    plq[masks["mouth"]] = 0.1  # the paper's lowest region is another one: it comes later, as detail
    text = feedback(region_means(plq, masks), 0.97, ("cheeks", 0.5), flagged=flag)
    clause = first_clause(text)
    assert [k for k in ("eyes", "nose", "mouth", "forehead", "cheeks") if k in clause] == names, text
    assert text.startswith(opening(flag)) and opening(flag).count(".") == 1  # one sentence
    if flag is not None and not flag[0]:
        assert clause == NOTHING_STANDS_OUT
    detail = text.split("Detail: ", 1)[1]
    assert "the mouth" in detail and "same-person comparison" in detail and "the cheeks lost most" in detail


def test_degraded_region_ignores_global_scale_and_the_backbones_layout(faces):
    masks = region_masks(faces[0].landmarks, 150)
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 1.5, (150, 150)) * np.where(masks["eyes"], 0.1, 1.0)  # eyes: always weak
    var = 0.01 * ref * np.where(masks["cheeks"], 0.2, 1.0)  # quality drop, and the cheeks lose most
    shares, shares_ref = saliency_shares(var, masks), saliency_shares(ref, masks)
    assert worst_region(region_means(ref, masks)) == worst_region(region_means(var, masks)) == "eyes"
    region, ratio = degraded_region(shares, shares_ref)
    assert region == "cheeks" and 0.2 < ratio < 0.3
    assert degraded_region(shares_ref, shares_ref)[1] == pytest.approx(1.0)


# -- synthetic ICAO variants ----------------------------------------------------------------------------------
def test_variants_cover_what_they_claim_and_reproduce(faces):
    face = faces[0]
    masks = region_masks(face.landmarks, 150)
    variants = icao.make_variants(face, seed=3)
    assert [v.name for v in variants] == list(icao.VIOLATIONS)
    assert set(icao._DRAW) == set(icao.VIOLATIONS)  # every drawing is named in options.ICAO_VIOLATIONS
    expected = {"sunglasses": {"eyes"}, "cap": {"forehead"}, "hand_on_cheek": {"cheeks"},
                "face_mask": {"nose", "mouth"}}
    for v in variants:
        assert v.image.shape == face.crop.shape and v.image.dtype == np.uint8
        assert not np.array_equal(v.image, face.crop), v.name
        assert (v.occluder is not None) == (v.category == "occlusion")
        if v.occluder is not None:
            covered = set(covered_regions(v.occluder, masks))
            assert expected[v.name] <= covered, (v.name, covered)
            far = cv2.dilate(v.occluder.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
            assert np.array_equal(v.image[far], face.crop[far])  # paints only where it says (edges softened)
    again = icao.make_variants(face, seed=3)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(variants, again))
    other = {v.name: v.image for v in icao.make_variants(face, seed=4)}
    assert not np.array_equal(other["noise"], {v.name: v.image for v in variants}["noise"])
    assert [v.name for v in icao.make_variants(face, only=["lighting", "roll"])] == [
        "side_light", "overexposure", "underexposure", "roll"]
    with pytest.raises(ValueError, match="unknown"):
        icao.select_violations("hat")


# -- the three experiments through the Python API ---------------------------------------------------------------
def test_masking_rows_reproduce_and_match_their_maps(explainer, faces):
    res = masking.run(explainer, faces[:1], sizes=(50,), per_size=2, seed=5)
    rows = table(res)
    assert len(rows) == 2 and set(csv_columns("masking")) - set(rows[0]) == {"status", "error", "output", "seconds"}
    original, first = res[0].panels[0], res[0].panels[1]
    for r in rows:
        px = r["size_px"]
        assert px == round(50 * 150 / 112)
        assert 7 <= r["x"] <= 150 - 7 - px and 7 <= r["y"] <= 150 - 7 - px  # inside the inner 90 %
        assert r["quality_lost"] == pytest.approx(r["quality_org"] - r["quality_mask"])
    r0 = rows[0]
    sq = (slice(r0["y"], r0["y"] + px), slice(r0["x"], r0["x"] + px))
    assert (first.image[sq] == 0).all()
    assert r0["plq_lost"] == pytest.approx(float(original.plq[sq].mean() - first.plq[sq].mean()), abs=1e-5)
    assert table(masking.run(explainer, faces[:1], sizes=(50,), per_size=2, seed=5)) == rows
    assert (rows[0]["x"], rows[0]["y"]) != (rows[1]["x"], rows[1]["y"])
    summary = masking.summary(rows)
    assert summary[0]["n"] == 2
    assert summary[0]["plq_lost_pos"] == np.mean([r["plq_lost"] > 0 for r in rows])
    assert summary[0]["quality_lost_median"] == pytest.approx(np.median([r["quality_lost"] for r in rows]))
    fig = plots.masking_distributions(rows)
    assert len(fig.axes) == 2 and all(len(ax.collections) >= 1 for ax in fig.axes)  # one violin group per panel
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [f"s=50\n{summary[0]['quality_lost_pos']:.0%} > 0"]
    grid = plots.panel_grid([res[0].panels])
    shown = [ax for ax in grid.axes if ax.images]
    assert len(shown) == 2 * len(res[0].panels)  # each panel's image and its map
    np.testing.assert_array_equal(shown[len(res[0].panels)].images[0].get_array(), original.plq)


def test_icao_rows_are_consistent(explainer, faces):
    res = icao.run(explainer, faces[:1], only=["cap", "blur"], seed=1)
    rows = res[0].rows
    assert [r["violation"] for r in rows] == ["reference", "cap", "blur"]
    assert rows[1]["affected_region"] == "forehead" and rows[2]["affected_region"] == ""
    for r in rows:
        assert r["quality_ref"] == rows[0]["quality"]
        assert r["quality_lost"] == pytest.approx(r["quality_ref"] - r["quality"])
        means = {k: r[f"plq_{k}"] for k in FACE_REGIONS}
        assert r["worst_region"] == min(means, key=means.get)
        assert f"the {r['worst_region']}" in r["feedback"]
        if r["violation"] == "reference":
            assert r["degraded_region"] == "" and "compliant photo" not in r["feedback"]
        else:
            assert r["degraded_region"] in FACE_REGIONS and f"the {r['degraded_region']} lost" in r["feedback"]
        assert set(csv_columns("icao")) - set(r) == {"status", "error", "output", "seconds"}
    assert len(res[0].panels) == 3
    assert table(icao.run(explainer, faces[:1], only=["cap", "blur"], seed=1)) == rows
    fig = plots.delta_by_violation(rows)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert [lab.split("\n")[0] for lab in labels] == ["cap", "blur"]  # the reference is not a violation
    assert labels[0].endswith(f"{float(rows[1]['quality_lost'] > 0):.0%} > 0")
    as_is = icao.run_as_is(explainer, faces[1:], reference=faces[0], seed=1)[0].rows[0]
    assert as_is["violation"] == "as-is" and as_is["quality_ref"] == pytest.approx(rows[0]["quality"], abs=1e-6)


def test_plq_mask_picks_low_regions_inside_the_face(faces):
    face = faces[0]
    masks = region_masks(face.landmarks, 150)
    plq = np.full((150, 150), 0.8, np.float32)
    plq[masks["mouth"]] = 0.05
    plq[:12, :12] = 0.0  # low, but outside the face
    mask = inpainting.plq_mask(plq, face.landmarks)
    assert mask[masks["mouth"]].all()
    assert not mask[:8, :8].any() and not mask[masks["forehead"]].any()
    assert np.array_equal(mask, inpainting.plq_mask(0.5 * plq, face.landmarks))  # level is relative to the face
    assert not inpainting.plq_mask(np.full((150, 150), 0.8, np.float32), face.landmarks).any()


def test_inpainting_run(explainer, faces):
    cap = next(v for v in icao.make_variants(faces[0], only="cap", seed=0))
    occluded = FaceCrop("cap", cap.image, cap.landmarks)
    res = inpainting.run(explainer, [occluded], masks=[cap.occluder], how="ns", repeats=2, seed=0, mask_from="occluder")
    row = res[0].rows[0]
    assert set(csv_columns("inpainting")) - set(row) == {"status", "error", "output", "seconds"}
    assert row["masked_fraction"] == pytest.approx(cap.occluder.mean())
    assert row["quality_before_std"] == row["quality_after_std"] == 0.0  # the default estimator is deterministic
    assert row["change"] == ("up" if row["quality_after"] > row["quality_before"] else "down")
    before, after = res[0].panels
    assert np.array_equal(before.image, cap.image)
    assert not np.array_equal(after.image[cap.occluder], cap.image[cap.occluder])
    assert np.array_equal(after.image[~cap.occluder], cap.image[~cap.occluder])
    rows = [row, {**row, "quality_before": 0.1, "change": "up"}]
    fig = plots.inpainting_sorted(rows)
    before_line = fig.axes[0].lines[0]
    np.testing.assert_allclose(before_line.get_ydata(), sorted([0.1, row["quality_before"]]))
    summary = inpainting.summary(rows)
    assert summary["n"] == 2 and summary["up"] == np.mean([r["change"] == "up" for r in rows])


# -- batch tables with several rows per file --------------------------------------------------------------------
def test_multi_row_table_resumes_per_file(tmp_path):
    cols = ["file", "status", "error", "output", "k", "seconds"]
    path = tmp_path / "t.csv"
    t = ResultTable(path, cols, multi_row=True)
    t.append([{"file": "a", "status": "ok", "k": 0}, {"file": "a", "status": "ok", "k": 1},
              {"file": "b", "status": "ok", "k": 0}, {"file": "b", "status": "error", "k": 1},
              {"file": "c", "status": "ok", "k": 0}])
    with open(path, "a") as f:
        f.write("c,ok,,,1,")  # the second row of c, cut by a kill
    t2 = ResultTable(path, cols, multi_row=True)
    assert t2.done_files == {"a"}  # b had an error row, c was cut mid-way
    assert [r["file"] for r in _csv(path)] == ["a", "a"]


# -- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_masking_and_icao_with_bad_input_and_resume(faces_dir, tmp_path, capsys):
    good = faces_dir / "london" / "neutral" / "003.jpg"
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    out = tmp_path / "m"
    args = ["experiment", "masking", str(good), str(bad), "--out", str(out), "--sizes", "30", "50", "--seed", "2"]
    assert main(args) == 0
    rows = _csv(out / "masking.csv")
    assert [r["status"] for r in rows].count("ok") == 2 and list(rows[0]) == csv_columns("masking")
    err = [r for r in rows if r["status"] == "error"]
    assert len(err) == 1 and "broken.jpg" in err[0]["error"]
    assert (out / "figures" / "masking_distributions.png").stat().st_size > 0
    assert (out / "figures" / "masking_examples.png").stat().st_size > 0
    assert main(args) == 0  # resume: the good file is kept, the bad one retried
    again = _csv(out / "masking.csv")
    assert [r for r in again if r["status"] == "ok"] == [r for r in rows if r["status"] == "ok"]
    assert "1 already done" in capsys.readouterr().err

    out = tmp_path / "i"
    assert main(["experiment", "icao", str(good), "--out", str(out), "--only", "occlusion", "--save-images"]) == 0
    rows = _csv(out / "icao.csv")
    assert [r["violation"] for r in rows] == ["reference", "sunglasses", "face_mask", "cap", "hand_on_cheek"]
    assert all(not math.isnan(float(r["plq_eyes"])) and r["feedback"] for r in rows)
    assert len(list((out / "images").rglob("*.png"))) == 5
    assert (out / "figures" / "icao_grid.png").exists() and (out / "figures" / "icao_quality_lost.png").exists()
    capsys.readouterr()
    assert main(["experiment", "icao", str(good), "--out", str(tmp_path / "x"), "--only", "hats"]) == 2
    assert "unknown violation or category ['hats']" in capsys.readouterr().err


def test_cli_inpainting_with_user_masks(faces_dir, tmp_path, explainer):
    good = faces_dir / "london" / "neutral" / "003.jpg"
    prepared = explainer.prepare(good)
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros(prepared.photo.shape[:2], np.uint8)
    nx, ny = np.round(prepared.detection.landmarks[2]).astype(int)
    mask[ny - 20:ny + 20, nx - 30:nx + 30] = 255  # a box on the nose, in photo pixels
    Image.fromarray(mask).save(masks / "003_mask.png")
    out = tmp_path / "p"
    assert main(["experiment", "inpainting", str(good), str(faces_dir / "london" / "neutral" / "004.jpg"),
                 "--out", str(out), "--mask-from", str(masks), "--repeats", "2"]) == 0
    rows = {r["file"].split("/")[-1]: r for r in _csv(out / "inpainting.csv")}
    assert rows["004.jpg"]["status"] == "error" and "no mask" in rows["004.jpg"]["error"]
    ok = rows["003.jpg"]
    assert ok["status"] == "ok" and 0.005 < float(ok["masked_fraction"]) < 0.3
    before, after = float(ok["quality_before"]), float(ok["quality_after"])
    assert float(ok["quality_before_std"]) == 0.0  # the default estimator is deterministic
    assert ok["change"] == ("up" if after > before else "down" if after < before else "within")
    assert (out / "figures" / "inpainting_sorted.png").exists() and (out / "figures" / "inpainting_pairs.png").exists()
