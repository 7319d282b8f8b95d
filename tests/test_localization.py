"""Explanations that point at the defect: localisation metrics, the deviation and counterfactual maps and the
compliant-face norm, region flagging, the inpainting mask and fills, ROAD — known answers on synthetic inputs, then
the real network."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from plqa_nb import degradations as dg
from plqa_nb.attribution import get_method
from plqa_nb.attribution import defect_scores
from plqa_nb.attribution.base import IMAGES_PER_PASS, windows_per_pass
from plqa_nb.attribution.deviation import FeatureNorm, deviation_maps, fit_feature_norm
from plqa_nb.cli import main
from plqa_nb.evaluation import localization as loc
from plqa_nb.evaluation.road import impute, road_curves
from plqa_nb.experiments import icao, inpainting
from plqa_nb.experiments.feedback import first_clause
from plqa_nb.regions import flag_region, region_masks
from plqa_nb.pipeline import Explainer, crops_to_tensor
from plqa_nb.stages import as_face_crop

from tolerances import PATH_QUALITY_ATOL


@pytest.fixture(scope="module")
def explainer():
    return Explainer("dlib-resnet")


@pytest.fixture(scope="module")
def face(explainer, faces_dir):
    return as_face_crop(explainer.prepare(faces_dir / "london" / "neutral" / "002.jpg"))


# -- metrics (known answers) ----------------------------------------------------------------------------------------
def test_localisation_metrics_on_known_maps(face):
    masks = region_masks(face.landmarks, 150)
    occluder = masks["eyes"].copy()
    perfect = occluder.astype(float) + np.random.default_rng(0).random((150, 150)) * 0.1
    inverse = -perfect
    row = loc.localization_row(perfect, occluder, masks, ["eyes"])
    assert row["mask_auc"] == 1.0 and row["region_hit"] == 1 and row["flagged_region"] == "eyes"
    assert row["relevance_mass"] > 2 * row["occluder_share"]  # far above chance
    assert loc.mask_auc(inverse, occluder, masks["face"]) == 0.0
    flat = np.random.default_rng(1).random((150, 150))
    assert abs(loc.mask_auc(flat, occluder, masks["face"]) - 0.5) < 0.1  # noise is chance
    assert loc.relevance_mass(flat, occluder, masks["face"]) == pytest.approx(row["occluder_share"], abs=0.03)


def test_defect_orientation_by_kind():
    a = torch.zeros(1, 3, 4, 4)
    a[0, :, 0, 0] = 1.0  # a strong gradient / a positive contribution at (0, 0)
    a[0, :, 1, 1] = 1e-6
    grad = defect_scores(a, "gradient")[0]
    assert grad[1, 1] > grad[0, 0]  # low sensitivity = the defect (the paper's reading)
    contrib = defect_scores(a - 0.5, "contribution")[0]
    assert contrib[0, 0] < contrib[2, 2]  # a pixel that adds quality is not to blame
    assert loc.orientation("counterfactual") == "contribution" and loc.orientation("saliency") == "gradient"
    assert loc.orientation("deviation") == "defect"
    with pytest.raises(ValueError):
        defect_scores(a, "sideways")


def test_flag_region_against_a_norm(face):
    masks = region_masks(face.landmarks, 150)
    norm = FeatureNorm((), (), (), (), threshold=2.0)
    defect = np.ones((150, 150))  # a typical compliant face reads about 1 everywhere
    assert flag_region(defect, masks, norm)[0] == ""  # nothing stands out
    defect[masks["mouth"]] = 3.0
    region, score = flag_region(defect, masks, norm)
    assert region == "mouth" and score == pytest.approx(3.0)  # the part's mean deviation
    one_cheek = masks["cheeks"] & (np.arange(150)[None, :] < 75)
    cheek = np.where(one_cheek, 3.0, 1.0)
    assert flag_region(cheek, masks, norm)[0] == "cheeks"  # one side is enough (a hand on one cheek)
    assert flag_region(cheek, masks, FeatureNorm((), (), (), (), threshold=3.0))[0] == ""
    defect = np.zeros((150, 150))
    defect[masks["mouth"]] = 3.0
    mask = inpainting.defect_mask(defect, face.landmarks)
    assert mask[masks["mouth"]].all() and not mask[masks["forehead"]].any()
    assert not inpainting.defect_mask(np.zeros((150, 150)), face.landmarks).any()
    # nowhere would a typical face do better
    assert not inpainting.defect_mask(-np.ones((150, 150)), face.landmarks).any()


def test_explanation_mask_falls_back_on_the_flagged_region(face):
    masks = region_masks(face.landmarks, 150)
    norm = FeatureNorm((), (), (), (), threshold=2.0)
    deviation = np.ones((150, 150))
    deviation[masks["eyes"]] = 3.0  # the eyes stand out
    grown = inpainting.flag_mask(deviation, face.landmarks, norm)
    assert grown[masks["eyes"]].all() and grown.sum() > masks["eyes"].sum()  # widened past the region
    assert not grown[~masks["face"]].any() and not grown[masks["mouth"]].any()
    assert not inpainting.flag_mask(np.ones((150, 150)), face.landmarks, norm).any()  # nothing stands out
    defect = np.zeros((150, 150))
    defect[masks["mouth"]] = 3.0  # the counterfactual blames the mouth: its mask wins
    np.testing.assert_array_equal(inpainting.explanation_mask(defect, deviation, face.landmarks, norm),
                                  inpainting.defect_mask(defect, face.landmarks))
    nowhere = -np.ones((150, 150))  # no window of the compliant face would help: the flagged region instead
    np.testing.assert_array_equal(inpainting.explanation_mask(nowhere, deviation, face.landmarks, norm), grown)
    assert not inpainting.explanation_mask(nowhere, np.ones((150, 150)), face.landmarks, norm).any()


# -- fills and ROAD (known answers) ---------------------------------------------------------------------------------
def test_fills_change_only_the_mask(face):
    masks = region_masks(face.landmarks, 150)
    hand = masks["cheeks"] & (np.arange(150)[None, :] < 75)  # the cheek on the image's left
    mean_face = np.full((150, 150, 3), 128, np.uint8)
    for how in inpainting.FILLS:
        out = inpainting.fill(face.crop, hand, how, face.landmarks, mean_face)
        assert out.shape == face.crop.shape and out.dtype == np.uint8
        assert not np.array_equal(out[hand], face.crop[hand]), how
        np.testing.assert_array_equal(out[~hand], face.crop[~hand], err_msg=how)
    mirrored = inpainting.fill(face.crop, hand, "mirror", face.landmarks, mean_face)
    other = masks["cheeks"] & (np.arange(150)[None, :] >= 75)
    # the filled cheek now looks like the other one: its mean colour moves towards the mirror image's
    assert np.abs(mirrored[hand].mean(0) - face.crop[other].mean(0)).max() < 25



def test_poisson_fill_at_the_crops_edge_on_slivers_and_over_an_occluder(face):
    crop = face.crop
    edge = np.zeros((150, 150), bool)
    edge[120:, 40:90] = True  # reaches the crop's bottom row, as a cheek or chin mask can
    # blending the crop into itself changes nothing but a rounding level; placing the patch by the whole mask's box
    # (OpenCV drops its pixels on the image's frame) shifted it by a pixel: up to 71 grey levels off on a London crop
    same = inpainting.fill(crop, edge, "mean-face", face.landmarks, crop)
    assert np.abs(same.astype(int) - crop).max() <= 1
    axis = np.zeros((150, 150), bool)
    axis[100:, 75] = True  # one pixel wide: what the mirror leaves on the face's axis
    out = inpainting.fill(crop, axis, "mean-face", face.landmarks, np.zeros_like(crop))
    np.testing.assert_array_equal(out[~axis], crop[~axis])  # only the masked pixels change
    assert not np.array_equal(out[axis], np.zeros_like(crop)[axis])  # filled from its border, not pasted black
    # the face's own clean crop blended under the painted sunglasses gives the face back; OpenCV's 3-px erosion of
    # the mask kept the lenses' rim, and with it their level: 92 grey levels dark on average on this crop
    glasses = icao.make_variants(face, "sunglasses")[0]
    lenses = dg.soft_alpha(glasses.occluder) >= 1 / 255
    back = inpainting.fill(glasses.image, lenses, "mean-face", glasses.landmarks, crop)
    assert np.abs(back.astype(int) - crop)[lenses].mean() < 2
    np.testing.assert_array_equal(back[~lenses], glasses.image[~lenses])


def test_road_imputation_reproduces_a_linear_image_and_curves_have_their_shape():
    ramp = np.stack([np.tile(np.linspace(0, 200, 20), (20, 1))] * 3)
    removed = np.zeros((20, 20), bool)
    removed[5:15, 5:15] = True
    filled = impute(ramp, removed, noise=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(filled, ramp, atol=1e-6)  # a linear image is its neighbours' mean
    images = torch.rand(2, 3, 20, 20) * 255
    orders = torch.stack([torch.randperm(400) for _ in range(6)]).view(2, 3, 400)
    curves = road_curves(images, orders, lambda x: x.mean((1, 2, 3)) / 255, fractions=(0.2, 0.5), seed=0)
    assert curves.morf.shape == curves.lerf.shape == (2, 3, 2) and curves.morf_auc.shape == (2, 3)
    again = road_curves(images, orders, lambda x: x.mean((1, 2, 3)) / 255, fractions=(0.2, 0.5), seed=0)
    assert torch.equal(again.morf, curves.morf)  # seeded


# -- the deviation and counterfactual maps on the real network -----------------------------------------------------
def test_the_shipped_norm_and_the_deviation_map(explainer, face):
    norm = explainer.compliant_norm()
    assert norm.mean_face.shape == (48, 48, 3)
    assert norm.features.taps == explainer.backbone.feature_taps and norm.features.threshold > 1
    variants = icao.make_variants(face, ["sunglasses", "face_mask", "cap", "hand_on_cheek"], seed=0)
    x = crops_to_tensor([face.crop] + [v.image for v in variants])
    attr = explainer.attribution_method("deviation").attribute(explainer.model, x, torch.ones(len(x)))
    assert attr.shape == x.shape
    dev = defect_scores(attr, loc.orientation("deviation"))
    masks = region_masks(face.landmarks, 150)
    assert flag_region(dev[0], masks, norm.features)[0] == ""  # the compliant photo: nothing stands out
    assert np.median(dev[0][masks["face"]]) < 3  # it reads like a compliant face (about 1)
    expected = {"sunglasses": "eyes", "face_mask": ("nose", "mouth", "cheeks"), "cap": "forehead",
                "hand_on_cheek": "cheeks"}
    for v, d in zip(variants, dev[1:]):
        # each occluder's pixels deviate far more than the rest of the face (measured AUC 0.87-0.98 on this face)
        assert loc.mask_auc(d, v.occluder, masks["face"]) > 0.8, v.name
        assert flag_region(d, masks, norm.features)[0] in expected[v.name], v.name


def test_explain_with_a_rank_method_gives_a_usefulness_rank(face):
    """`plqa explain --method deviation` (or grad-cam, counterfactual): the PLQ is the per-image rank of the
    pixel's usefulness, so the region the map blames is the one of lowest PLQ — not v(·) of a map that is not in
    gradient units, which is ≈ 1 everywhere."""
    from plqa_nb.regions import region_means, worst_region

    variant = icao.make_variants(face, ["sunglasses"], seed=0)[0]
    x = crops_to_tensor([variant.image])
    masks = region_masks(face.landmarks, 150)
    out = Explainer("dlib-resnet", method="deviation").explain_tensor(x)
    plq = out["plq"][0].numpy()
    assert plq.min() >= 0 and plq.max() <= 1 and 0.4 < plq.mean() < 0.6  # ranks, spread over [0, 1]
    assert worst_region(region_means(plq, masks)) == "eyes"  # the sunglasses are the least useful pixels
    cam = Explainer("dlib-resnet", method="grad-cam").explain_tensor(x)["plq"][0].numpy()
    assert cam.std() > 0.2  # a rank map, not a flat v(·) of Grad-CAM's units


def test_the_feature_norm_is_fitted_out_of_fold(explainer, faces_dir):
    photos = sorted((faces_dir / "london" / "smiling").glob("*.jpg"))[:12]
    faces = [as_face_crop(explainer.prepare(p)) for p in photos]
    crops = crops_to_tensor([f.crop for f in faces])
    norm = fit_feature_norm(explainer.backbone, crops, [region_masks(f.landmarks, 150) for f in faces])
    assert norm.taps == explainer.backbone.feature_taps
    assert [m.shape for m in norm.mean] == [(64, 17, 17), (128, 8, 8)] and all(s.min() > 0 for s in norm.std)
    again = FeatureNorm.from_record(norm.record())  # what a calibration file holds
    assert again.threshold == norm.threshold and all(np.array_equal(a, b) for a, b in zip(again.std, norm.std))
    maps = deviation_maps(explainer.backbone, crops, again).numpy()
    # unseen faces deviate more than the faces the moments were fitted on: those read well below 1
    assert min(norm.level) > 1 and norm.threshold > 1
    assert np.mean([m[r["face"]].mean() for m, r in zip(maps, [region_masks(f.landmarks, 150) for f in faces])]) < 1
    with pytest.raises(ValueError, match="at least 6"):
        fit_feature_norm(explainer.backbone, crops[:4], [])


def test_the_counterfactual_map(explainer, face):
    variant = icao.make_variants(face, ["face_mask"], seed=0)[0]
    x = crops_to_tensor([face.crop, variant.image])
    weights = explainer.weights(x, explainer.quality(x)[0])
    attr = explainer.attribution_method("counterfactual").attribute(explainer.model, x, weights)
    assert attr.shape == x.shape
    # the pass size only batches the windows: one window of each image a pass gives the same map
    one = explainer.attribution_method("counterfactual", images_per_pass=1).attribute(explainer.model, x, weights)
    assert (one - attr).abs().max() <= PATH_QUALITY_ATOL  # raw-quality units
    assert windows_per_pass(x, IMAGES_PER_PASS) == IMAGES_PER_PASS // 2 and windows_per_pass(x, 1) == 1
    defect = defect_scores(attr, "contribution")
    masks = region_masks(variant.landmarks, 150)
    # the mask's pixels are blamed far more than the rest of the face (measured AUC 0.95 on this face)
    assert loc.mask_auc(defect[1], variant.occluder, masks["face"]) > 0.75
    plain = Explainer("dlib-resnet").model
    plain.estimate = None
    with pytest.raises(ValueError, match="needs the quality estimator"):
        explainer.attribution_method("counterfactual").compute(plain, x, torch.ones(2))
    with pytest.raises(ValueError, match="no compliant-face norm for backbone 'dlib-resnet'.*plqa calibrate"):
        get_method("counterfactual").compute(explainer.model, x, torch.ones(2))  # without the Explainer's norm


def test_icao_flags_and_localises_through_the_cli(faces_dir, tmp_path, capsys):
    photo = faces_dir / "london" / "neutral" / "002.jpg"
    out = tmp_path / "icao"
    assert main(["experiment", "icao", str(photo), "--out", str(out), "--only", "face_mask", "--only", "cap",
                 "--methods", "saliency", "input-x-gradient"]) == 0
    with open(out / "icao.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["violation"] for r in rows] == ["reference", "face_mask", "cap"]
    assert all("flagged_region" in r for r in rows)
    for r in rows:
        text = "Nothing stands out" if r["flagged_region"] == "" else f"Change the {r['flagged_region']} first"
        assert first_clause(r["feedback"]).startswith(text)
    with open(out / "localization.csv") as f:
        local = list(csv.DictReader(f))
    assert sorted({r["method"] for r in local}) == ["deviation", "input-x-gradient", "saliency"]
    assert len(local) == 2 * 3 and {r["violation"] for r in local} == {"face_mask", "cap"}
    assert {r["method"] for r in local if r["drives_feedback"] == "1"} == {"deviation"}
    flagged = {r["violation"]: r["flagged_region"] for r in rows}
    assert all(r["flagged_region"] == flagged[r["violation"]] for r in local if r["drives_feedback"] == "1")
    with open(out / "localization_summary.csv") as f:
        summary = {r["method"]: r for r in csv.DictReader(f)}
    assert set(summary) == {"deviation", "saliency", "input-x-gradient"}
    assert float(summary["deviation"]["mask_auc"]) == pytest.approx(
        np.mean([float(r["mask_auc"]) for r in local if r["method"] == "deviation"]))
    before = (out / "localization.csv").read_bytes()
    (out / "localization" / "002.jpg.csv").unlink()  # a resumed run reads a done photo's rows from its own file
    assert main(["experiment", "icao", str(photo), "--out", str(out), "--only", "face_mask", "--only", "cap",
                 "--methods", "saliency", "input-x-gradient"]) == 0
    with open(out / "localization.csv") as f:
        assert list(csv.DictReader(f)) == []
    assert "have no localization rows" in capsys.readouterr().err
    assert main(["experiment", "icao", str(photo), "--out", str(out), "--only", "face_mask", "--only", "cap",
                 "--methods", "saliency", "input-x-gradient", "--overwrite"]) == 0
    assert (out / "localization.csv").read_bytes() == before


def test_inpainting_occlusions_with_each_fill(faces_dir, tmp_path):
    photo = faces_dir / "london" / "neutral" / "002.jpg"
    for how in ("mean-face", "telea"):
        out = tmp_path / how
        assert main(["experiment", "inpainting", str(photo), "--out", str(out), "--occlude", "face_mask",
                     "--fill", how, "--repeats", "1"]) == 0
        with open(out / "inpainting.csv") as f:
            (row,) = list(csv.DictReader(f))
        assert (row["violation"], row["fill"], row["mask_source"]) == ("face_mask", how, "plq")
        assert 0.01 < float(row["masked_fraction"]) < 0.5  # the explanation found something to fill
