"""Quality estimators, scaling, the regression model M_Q and the fused PLQ path, on real faces."""
import numpy as np
import pytest
import torch

from plqa_nb.degradations import gaussian_blur
from plqa_nb.pipeline import Explainer, crops_to_tensor
from plqa_nb.plq import merge_channels, plq_from_saliency
from plqa_nb.quality import FaceQan, SerFiq
from plqa_nb.regression import QualityRegressionModel, quality_weights
from tolerances import PATH_PLQ_ATOL, PATH_SALIENCY_REL, max_relative

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)


@pytest.fixture(scope="module")
def crops(london_crops):
    return crops_to_tensor(london_crops[:3])


@pytest.mark.parametrize("estimator", [SerFiq(m=20), FaceQan(k=3, l=2)], ids=["serfiq", "faceqan"])
def test_estimators_are_seeded_and_batch_independent(crops, estimator):
    from plqa_nb.backbones import load_backbone

    bb = load_backbone("dlib-resnet")
    a = estimator.raw(bb, crops, seed=7)
    b = estimator.raw(bb, crops, seed=7)
    c = estimator.raw(bb, crops, seed=8)
    alone = estimator.raw(bb, crops[1:2], seed=7)
    assert a.shape == (3,) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(alone, a[1:2], atol=1e-5, rtol=0)


def test_serfiq_reuses_trunk_features(crops):
    from plqa_nb.backbones import load_backbone

    bb = load_backbone("dlib-resnet")
    est = SerFiq(m=20)
    with torch.no_grad():
        feats = bb.trunk(crops)
    torch.testing.assert_close(est.raw(bb, crops, features=feats, seed=1), est.raw(bb, crops, seed=1))


def test_faceqan_sees_blur_on_real_faces(london_crops):
    """Every one of 6 faces: FaceQAN's raw Q drops under blur (σ = 3 px) by 0.031 or more (this machine's
    kernels; FaceQAN follows the sign of gradients, so its values move by ~1e-3 between kernel sets,
    DESIGN.md §2b): a bound of 0.01 keeps a margin of 0.02."""
    ex = Explainer("dlib-resnet", quality="faceqan")
    sharp = crops_to_tensor(london_crops)
    blurred = crops_to_tensor([gaussian_blur(c, 3.0) for c in london_crops])
    q_sharp, q_blur = ex.quality(sharp)[1], ex.quality(blurred)[1]
    assert (q_sharp - q_blur > 0.01).all(), (q_sharp, q_blur)


@pytest.mark.parametrize("norm", ["signed", "l1"])
def test_regression_model_reproduces_quality(crops, norm):
    ex = Explainer("dlib-resnet", quality="serfiq", quality_params={"m": 20}, norm=norm)
    q_hat, _ = ex.quality(crops)
    w = ex.weights(crops, q_hat)
    with torch.no_grad():
        out = ex.model(crops, w)
        emb = ex.backbone(crops)
    if norm == "signed":
        torch.testing.assert_close(out, q_hat, atol=1e-6, rtol=1e-5)  # M_Q(I) = Q̂ (Eq. 3, authors' form)
    else:
        torch.testing.assert_close(out, q_hat * emb.sum(1) / emb.abs().sum(1), atol=1e-6, rtol=1e-5)


def test_fused_path_matches_model_gradient_and_is_seeded(crops):
    ex = Explainer("dlib-resnet", quality="serfiq", quality_params={"m": 20}, seed=3)
    out = ex.explain_tensor(crops)
    again = ex.explain_tensor(crops)
    for k in out:
        assert torch.equal(out[k], again[k]), k
    x = crops.clone().requires_grad_(True)
    w = ex.weights(crops, out["quality"])
    (g,) = torch.autograd.grad(ex.model(x, w).sum(), x)
    # the unit-model gradient times w (stages.py) against autograd through M_Q with its weight: rounding only
    assert max_relative(out["attribution"], g.abs()) < PATH_SALIENCY_REL
    assert max_relative(out["saliency"], merge_channels(g)) < PATH_SALIENCY_REL
    assert (out["plq"] - plq_from_saliency(merge_channels(g), ex.scaling.gamma)).abs().max() < PATH_PLQ_ATOL
    assert out["plq"].shape == (3, 150, 150) and 0 <= out["plq"].min() and out["plq"].max() <= 1


def test_sum_guard_and_gradient_clipping(crops):
    emb = torch.tensor([[0.5, -0.5 + 1e-5], [0.6, 0.8]])
    with pytest.warns(RuntimeWarning, match="clamped"):
        w = quality_weights(emb, torch.tensor([0.5, 0.5]))
    assert torch.isfinite(w).all() and abs(float(w[0])) == pytest.approx(0.5 / 1e-3)
    ex = Explainer("dlib-resnet", quality="serfiq", quality_params={"m": 10}, clip_grad=1e-4)
    g = ex.explain_tensor(crops)["attribution"]
    assert (g.flatten(1).norm(dim=1) <= 1e-4 * (1 + 1e-5)).all()
    model = QualityRegressionModel(ex.backbone, clip_grad=1e-4)
    x = crops.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(model(x, ex.weights(crops, torch.full((3,), 0.5))).sum(), x)
    assert (g2.flatten(1).norm(dim=1) <= 1e-4 * (1 + 1e-5)).all()


def test_explain_api_on_a_photo(faces_dir):
    from plqa_nb import explain

    r = explain(faces_dir / "london/neutral/003.jpg")
    assert r.crop.shape == (150, 150, 3) and r.plq.shape == (150, 150) and r.embedding.shape == (128,)
    assert 0.0 <= r.quality <= 1.0 and r.faces_found == 1
    assert r.overlay().shape == r.photo.shape
    fig = r.figure()
    assert len(fig.axes) >= 3
    # the face centre is more useful than the crop corners (PLQ carries signal, not noise)
    assert r.plq[50:100, 50:100].mean() > r.plq[:15, :15].mean()


def test_ers_drops_for_blur_and_squares_on_real_faces(london_crops):
    """ERS notices strong blur (σ = 6 px; mild blur only in about 2 of 3 photos) and a 50-px
    black square (112-px scale) on each of 6 real faces: the smallest drop of the raw Q (1 − cosine to the
    centre) is 0.006 for blur and 0.007 for the square on this machine, where rounding moves it by ~1e-6;
    the bound of 0.002 keeps a margin of 0.004."""
    from plqa_nb import degradations as dg

    ex = Explainer("dlib-resnet", quality="ers")
    s = london_crops[0].shape[0]
    px = dg.to_crop_px(50, s)
    rng = np.random.default_rng(0)
    squares = [dg.black_square(c, *dg.random_square_position(rng, s, px), px) for c in london_crops]
    q = ex.quality(crops_to_tensor(london_crops))[1]
    q_blur = ex.quality(crops_to_tensor([gaussian_blur(c, 6.0) for c in london_crops]))[1]
    q_square = ex.quality(crops_to_tensor(squares))[1]
    assert (q - q_blur > 0.002).all(), (q, q_blur)
    assert (q - q_square > 0.002).all(), (q, q_square)


def test_ers_centre_from_a_few_photos_is_the_shipped_one(faces_dir):
    """`ui_centre` from 8 smiling photos lands next to the shipped centre (made from all 102)."""
    from plqa_nb.config import shipped_bundle
    from plqa_nb.quality import ui_centre

    ex = Explainer("dlib-resnet")
    crops = [ex.prepare(faces_dir / "london" / "smiling" / f"{i:03d}.jpg").aligned.crop for i in range(1, 9)]
    centre = ui_centre(ex.backbone, crops)
    shipped = torch.tensor(shipped_bundle("dlib-resnet").estimators["ers"].state["ui_centre"])
    assert centre.shape == shipped.shape == (128,)
    assert abs(float(centre.norm()) - 1) < 1e-5
    assert float(centre @ shipped) > 0.99


def test_ers_without_a_centre_names_the_fix():
    from plqa_nb.backbones.facenet import FaceNet
    from plqa_nb.quality import Recognizability

    bb = FaceNet(dataset=None).eval()
    with pytest.raises(ValueError, match="plqa calibrate"):
        Recognizability().raw(bb, torch.zeros(1, 3, bb.crop_size, bb.crop_size))


def test_calibration_bundle_carries_the_centre_and_norm(tmp_path, faces_dir):
    """calibrate_bundle → file → Explainer: the fitted centre, scaling and norm come back (plumbing, random-weight
    backbone)."""
    from plqa_nb.backbones.facenet import FaceNet
    from plqa_nb.config import read_bundle
    from plqa_nb.calibration.fit import calibrate_bundle
    from plqa_nb.stages import as_face_crop, prepare_face

    torch.manual_seed(0)
    bb = FaceNet(dataset=None).eval()
    faces = [as_face_crop(prepare_face(faces_dir / "london" / "smiling" / f"{i:03d}.jpg", bb)) for i in range(1, 7)]
    bundle = calibrate_bundle(bb, faces, {"ers": None}, "ers", "l1", target="spread")
    path = tmp_path / "calib.json"
    path.write_text(bundle.text())
    assert read_bundle(path) == bundle and bundle.weights_sha1 == bb.fingerprint()
    again = Explainer(bb, calibration=path)
    fitted = bundle.estimators["ers"]
    assert (again.config.alpha, again.config.r, again.config.gamma) == (fitted.alpha, fitted.r, fitted.gamma)
    assert again.estimator.name == "ers" and again.norm == "l1"
    torch.testing.assert_close(again.estimator.centre, torch.tensor(fitted.state["ui_centre"]), atol=1e-6, rtol=0)
    assert again.compliant_norm().features.taps == ("net.repeat_1", "net.repeat_2")  # FaceNet's own taps
