"""Quality as recognition utility: the development set, the utility head, the utility calibration, and the
notebook's in-memory ERC, on the real network and real photos."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plqa_nb.backbones import CustomBackbone, load_backbone
from plqa_nb.config import CalibrationBundle, EstimatorCalibration
from plqa_nb.config import resolve_config
from plqa_nb.degradations import DEV_PROTOCOL, gaussian_blur
from plqa_nb.pipeline import Explainer, crops_to_tensor
from plqa_nb.quality import UtilityHead
from plqa_nb.calibration.fit import fit_logistic
from plqa_nb.calibration.devset import REFERENCES, DevSet, capture_reference, degraded_versions
from plqa_nb.quality.utility import exposure_measures, fit_head, head_inputs, identity_folds
from plqa_nb.stages import as_face_crop

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)


@pytest.fixture(scope="module")
def smiling(faces_dir):
    """Six clean London *smiling* faces (the fitting side of the data) as FaceCrop."""
    ex = Explainer("dlib-resnet")
    return [as_face_crop(ex.prepare(faces_dir / "london" / "smiling" / f"{i:03d}.jpg")) for i in range(1, 7)]


# -- fitting maths (known answers) ------------------------------------------------------------------------------
def test_fit_logistic_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    q = rng.uniform(0.85, 1.0, 20000)
    matched = rng.random(q.size) < 1 / (1 + np.exp(-120.0 * (q - 0.93)))
    alpha, r = fit_logistic(q, matched)
    assert alpha == pytest.approx(120.0, rel=0.1) and r == pytest.approx(0.93, abs=0.002)
    with pytest.raises(ValueError, match="only matches"):
        fit_logistic(q, np.ones(q.size, bool))


def test_fit_head_without_pairs_is_ridge_regression_and_folds_split_identities():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 4)) * [1, 10, 0.1, 3] + [0, 5, -2, 1]
    w_true, b_true = np.array([0.5, -0.02, 3.0, 0.1]), 0.7
    w, b = fit_head(z, z @ w_true + b_true, ridge=1e-8)
    np.testing.assert_allclose(w, w_true, rtol=1e-5)
    assert b == pytest.approx(b_true, rel=1e-5)
    folds = identity_folds(11, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(11)) and len(folds) == 5
    assert [f.tolist() for f in identity_folds(11, 5, seed=3)] == [f.tolist() for f in folds]


def test_fit_head_ranking_term_orders_the_pairs_the_labels_cannot():
    """Labels whose noise (σ 0.3) hides the small cost (0.001) of an effect that switches on the second input: the
    regression's weight on it is noise; with the ranking term every pair (a probe, and it with the effect) keeps
    its margin. Pairs the labels already order by more than the margin leave the fit as it was."""
    rng = np.random.default_rng(2)
    n = 400
    clean = np.c_[rng.normal(size=n), np.zeros(n)]
    z = np.concatenate([clean, clean + [0.0, 1.0]])
    y = z[:, 0] - 0.001 * z[:, 1] + rng.normal(0, 0.3, 2 * n)
    better, worse = np.arange(n), np.arange(n, 2 * n)
    w_plain, _ = fit_head(z, y, ridge=1e-3)
    w, b = fit_head(z, y, better, worse, ridge=1e-3, rank_weight=300.0, margin=0.05)
    q = z @ w + b
    assert np.all(q[better] - q[worse] >= 0.05 * y.std() * 0.99) and w[1] < 0
    assert np.corrcoef(q, y)[0, 1] > 0.9 * np.corrcoef(z @ w_plain, y)[0, 1]  # the regression is not given up
    y_clear = z[:, 0] - 1.0 * z[:, 1] + rng.normal(0, 0.3, 2 * n)  # a cost far above the margin
    w_clear, _ = fit_head(z, y_clear, better, worse, ridge=1e-3, rank_weight=300.0, margin=0.05)
    np.testing.assert_allclose(w_clear, fit_head(z, y_clear, ridge=1e-3)[0], rtol=1e-12)


# -- the development set --------------------------------------------------------------------------------------------
def test_dev_images_are_seeded_per_face_and_references_are_other_captures(smiling):
    face = smiling[0]
    versions = degraded_versions(face, seed=0)
    assert len(versions) == len(DEV_PROTOCOL.levels())
    assert all(not np.array_equal(img, face.crop) for _, _, img in versions)
    again = degraded_versions(face, seed=0)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(versions, again))
    noisy = {(k, lv): img for k, lv, img in versions}
    assert not np.array_equal(noisy[("noise", 1)], {(k, lv): i for k, lv, i in degraded_versions(face, 1)}[("noise", 1)])
    ref = capture_reference(face, np.random.default_rng(0))
    assert ref.shape == face.crop.shape and not np.array_equal(ref, face.crop)
    net = load_backbone("dlib-resnet")
    with torch.no_grad():
        e = net(crops_to_tensor([face.crop, ref, smiling[1].crop]))
    # another capture of the same face: far more similar than a different person, not the image itself
    assert 0.95 < float(e[0] @ e[1]) < 0.9999 and float(e[0] @ e[2]) < 0.93


def test_dev_scores_give_labels_matches_and_a_threshold(smiling):
    dev = DevSet(load_backbone("dlib-resnet"), smiling[:3], seed=0)
    s = dev.scores
    per_face = 1 + len(DEV_PROTOCOL.levels())
    assert s.probe_features.shape == (3 * per_face, 256) and s.genuine.shape == (3 * per_face, REFERENCES)
    assert s.reference_embedding.shape == (3 * REFERENCES, 128)
    clean = s.probe_kind == "clean"
    assert (s.genuine[clean] > 0.95).all()  # a clean face against its own other captures
    worst = (s.probe_kind == "pixelate") & (s.probe_level == 5)
    assert s.labels[worst].max() < s.labels[clean].min()  # 12-px pixelation loses what the clean face has
    np.testing.assert_array_equal(s.matches, s.genuine >= s.threshold)
    quality, matched = dev.pairs(np.arange(len(s.probe_face), dtype=float), np.zeros(3 * REFERENCES))
    assert quality.shape == matched.shape == (s.genuine.size,) and (quality == 0).all()


# -- the utility head --------------------------------------------------------------------------------------------
def test_the_shipped_head_is_a_linear_map_of_the_networks_features(london_crops):
    net = load_backbone("dlib-resnet")
    head = resolve_config("dlib-resnet", "utility").make_estimator()  # the head of the shipped bundle
    crops = crops_to_tensor(london_crops[:3])
    w, b = head.head_for(net)
    with torch.no_grad():
        f = net.trunk(crops)
        d = net.head_layers(f)
        light = exposure_measures(crops)
        z = torch.cat([f, d / d.norm(dim=1, keepdim=True), d.norm(dim=1, keepdim=True).log(), light.float()], 1)
    assert w.shape == (256 + 128 + 1 + 2,)
    torch.testing.assert_close(head_inputs(net, f, light), z)
    expected = (z.double() @ w + b).float()
    torch.testing.assert_close(head.raw(net, crops), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(head.raw(net, crops, features=f), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="385 weights, but its inputs .* have 387.*plqa calibrate"):
        UtilityHead(w[:385], b).raw(net, crops)  # a head of the layout before the exposure measures


def test_exposure_measures_count_soft_highlights_and_shadows(london_crops):
    """h rises and s falls with every step of more light, the reverse with less; a mid-grey crop has neither, a
    white one is all highlight (h = 0.03 · softplus((1 − 0.9) / 0.03) ≈ 0.101)."""
    from plqa_nb import degradations as dg

    c = london_crops[0]
    steps = [dg.exposure(c, s) for s in (-1.0, -0.33, 0.0, 0.33, 1.0)]
    h, s = exposure_measures(crops_to_tensor(steps)).T.numpy()
    assert (np.diff(h) > 0).all() and (np.diff(s) < 0).all(), (h, s)
    flat = exposure_measures(crops_to_tensor([np.full_like(c, 128), np.full_like(c, 255)])).numpy()
    assert flat[0] == pytest.approx([0, 0], abs=1e-6)
    assert flat[1, 0] == pytest.approx(0.03 * np.log1p(np.exp(0.1 / 0.03)), rel=1e-5) and flat[1, 1] < 1e-6


def test_utility_falls_with_more_light(london_crops):
    """On 6 unseen (neutral) faces: half a stop more light lowers the mean raw Q by more than 0.0005 (measured
    0.0013), a stop more or 50 more grey levels lower every face's by more than 0.0005 (smallest drops measured:
    0.0018, 0.0008). The head without the exposure measures failed all three (mean +0.0002; a face rose under each)."""
    from plqa_nb import degradations as dg

    ex = Explainer("dlib-resnet", quality="utility")
    q0, half, stop, lighter = (ex.quality(crops_to_tensor([fn(c) for c in london_crops]))[1].numpy() for fn in
                               (lambda c: c, lambda c: dg.exposure(c, 0.5), lambda c: dg.exposure(c, 1.0),
                                lambda c: dg.darken(c, -50)))
    assert (q0 - half).mean() > 0.0005, q0 - half
    assert (q0 - stop > 0.0005).all() and (q0 - lighter > 0.0005).all(), (q0 - stop, q0 - lighter)


def test_utility_falls_under_blur_on_every_face(london_crops):
    """The raw Q (a predicted cosine) of 6 unseen (neutral) faces drops under a σ = 6 px blur (112-px scale) by
    at least 0.01 (smallest drop measured: 0.06)."""
    ex = Explainer("dlib-resnet", quality="utility")
    q = ex.quality(crops_to_tensor(london_crops))[1]
    blurred = ex.quality(crops_to_tensor([gaussian_blur(c, 6 * 150 / 112) for c in london_crops]))[1]
    assert (q - blurred > 0.01).all(), (q, blurred)


def test_photometric_degradations_do_what_they_say(london_crops):
    from plqa_nb import degradations as dg

    c = london_crops[0]
    mean = c.reshape(-1, 3).astype(float).mean(0)
    warm, cold = dg.colour_cast(c, 0.3).reshape(-1, 3).mean(0), dg.colour_cast(c, -0.3).reshape(-1, 3).mean(0)
    assert warm[0] > mean[0] > cold[0] and warm[2] < mean[2] < cold[2] and np.allclose(warm[1], mean[1], atol=0.5)
    assert np.allclose(c.astype(float).mean() - dg.darken(c, 40).astype(float).mean(), 40, atol=5)
    grey = dg.desaturate(c, 1.0).astype(int)
    assert (np.abs(grey - grey.mean(2, keepdims=True)) <= 1).all()
    v = dg.vignette(c, 0.9)
    assert np.array_equal(v[75, 75], c[75, 75]) and v[:10, :10].mean() < 0.3 * c[:10, :10].mean() + 1
    assert len(np.unique(dg.posterize(c, 4))) <= 4
    assert all(f.dtype == np.uint8 and f.shape == c.shape for f in
               (dg.colour_cast(c, 0.5), dg.darken(c, 300), dg.desaturate(c, 0.5), v, dg.posterize(c, 8)))


def test_a_head_needs_its_own_network():
    torch.manual_seed(0)
    other = CustomBackbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 8)),
                           torch.nn.Linear(8, 4), name="dlib-resnet", crop_size=16)
    with pytest.raises(ValueError, match="no utility head for backbone 'dlib-resnet'.*plqa calibrate"):
        UtilityHead().raw(other, torch.zeros(1, 3, 16, 16))


def test_training_the_head_held_out_and_in_the_calibration_file(smiling):
    """fit trains on every probe; out_of_fold_raw predicts each face's images with a head that never saw it."""
    net = load_backbone("dlib-resnet")
    dev = DevSet(net, smiling, seed=0)
    head = UtilityHead()
    extra = head.fit(net, dev)
    assert len(extra["head_weights"]) == 387 and isinstance(extra["head_bias"], float)
    s = dev.scores
    assert s.probe_exposure.shape == (len(s.labels), 2) and s.reference_exposure.shape == (len(smiling) * REFERENCES, 2)
    fitted = dev.raw(head)[0]  # the head on the set's images, made again from the seed
    raw_probe, raw_ref = head.out_of_fold_raw(net, dev, folds=3, seed=0)
    assert raw_probe.shape == (len(s.labels),) and raw_ref.shape == (len(smiling) * REFERENCES,)
    in_sample, held_out = np.abs(fitted - s.labels).mean(), np.abs(raw_probe - s.labels).mean()
    assert held_out > in_sample  # a held-out face is harder than a seen one, as for any unseen photo
    better, worse = s.ordered_pairs  # clean → first strength, and each strength → the next, per face and kind
    assert len(better) == len(smiling) * len(DEV_PROTOCOL.levels())
    assert (s.probe_face[better] == s.probe_face[worse]).all()
    assert ((s.probe_kind[better] == s.probe_kind[worse]) | (s.probe_kind[better] == "clean")).all()
    assert np.mean(fitted[better] > fitted[worse]) == 1.0  # the ranking term: every face's order, as fitted
    bundle = CalibrationBundle("dlib-resnet", "l1", "utility", {"utility": EstimatorCalibration(100.0, 0.9, 11.0, extra)})
    config = resolve_config("dlib-resnet", calibration=CalibrationBundle.from_record(json.loads(bundle.text())))
    np.testing.assert_allclose(config.make_estimator().weights.numpy(), extra["head_weights"])


# -- the notebook's in-memory ERC ---------------------------------------------------------------------------------
def test_utility_evaluation_in_memory(faces_dir):
    from plqa_nb.widgets import evaluation as wev

    calls = []
    run = wev.run_utility_evaluation(identities=4, probes=2, estimators=("utility", "ers"), seed=0,
                                     progress=lambda *a: calls.append(a))
    assert calls[-1] == (4, 4) and len(run.images) + len(run.failed) == 4 * 4
    methods = [r.method for r in run.results]
    assert methods == ["utility", "ers", "random", "oracle"]
    genuine = run.results[0].genuine
    assert genuine == len(run.matched) == len(run.pair_quality["utility"])
    oracle = run.results[-1]
    assert oracle.curve.at(0) == run.results[0].curve.at(0)  # the same pairs and threshold
    fig = wev.erc_figure(run)
    assert [t.name.split(" ")[0] for t in fig.data] == methods
    rel = wev.reliability_figure(run)
    assert [t.name.split(" ")[0] for t in rel.data[1:]] == ["utility", "ers"]
    table = wev.summary_table(run)
    assert [r["quality_method"] for r in table] == methods
    kinds = wev.kinds_table(run)
    assert {r["kind"] for r in kinds} >= {"reference", "clean"}
    assert sum(r["images"] for r in kinds) == len(run.images)
