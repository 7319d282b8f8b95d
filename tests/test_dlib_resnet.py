"""dlib's face-descriptor ResNet: our parser and PyTorch port against dlib itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import skip_or_fail
from plqa_nb.backbones.dlib_format import (DlibFormatError, DlibReader, decode_compact_int, encode_compact_int,
                                           read_dlib_resnet_weights)
from plqa_nb.backbones.dlib_resnet import DlibResNet, dlib_add, dlib_model_path, load_dlib_resnet
from plqa_nb.errors import ModelUnavailableError
from tolerances import DLIB_PARITY_ATOL

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)

N_CHIPS = 12


@pytest.fixture(scope="module")
def model_path() -> str:
    try:
        return dlib_model_path()
    except ModelUnavailableError as exc:
        skip_or_fail(str(exc))


@pytest.fixture(scope="module")
def model(model_path) -> DlibResNet:
    return DlibResNet.from_dlib_file(model_path)


@pytest.fixture(scope="module")
def chips(faces_dir, dlib_module, model_path) -> np.ndarray:
    """Up to N_CHIPS aligned 150-px chips [N,150,150,3] uint8, cut by dlib itself."""
    from PIL import Image

    dlib = dlib_module
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(dlib_model_path("shape_predictor_5_face_landmarks.dat"))
    out = []
    for path in sorted((faces_dir / "london" / "neutral").glob("*.jpg"))[:N_CHIPS]:
        img = np.asarray(Image.open(path).convert("RGB"))
        dets = detector(img, 0)
        if len(dets):
            out.append(dlib.get_face_chip(img, predictor(img, dets[0]), size=150, padding=0.25))
    assert len(out) >= 10, f"dlib found faces in only {len(out)} photos"
    return np.stack(out)


def _to_tensor(chips: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()


# -- (a) same descriptor as dlib -------------------------------------------------------


def test_descriptor_matches_dlib(model, chips, dlib_module, model_path):
    reference = dlib_module.face_recognition_model_v1(model_path)
    expected = np.stack([np.array(reference.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = model.descriptor(_to_tensor(chips)).numpy()
    assert ours.shape == (len(chips), 128)
    assert np.abs(ours - expected).max() < DLIB_PARITY_ATOL
    # the normalised embedding of the Backbone contract is the same direction
    with torch.no_grad():
        emb = model(_to_tensor(chips[:2])).numpy()
    np.testing.assert_allclose(emb, expected[:2] / np.linalg.norm(expected[:2], axis=1, keepdims=True), atol=1e-5)


def test_trunk_and_head_split(model, chips):
    x = _to_tensor(chips[:2])
    with torch.no_grad():
        f = model.trunk(x)
        assert f.shape == (2, 256)
        torch.testing.assert_close(model.head_layers(f), model.descriptor(x))


def test_load_dlib_resnet_caches(tmp_path, monkeypatch, model, model_path):
    monkeypatch.setenv("PLQA_CACHE", str(tmp_path))
    first = load_dlib_resnet()
    cached = list(tmp_path.glob("dlib_face_recognition_resnet_model_v1.*.pt"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp"))
    second = load_dlib_resnet()  # from the cache
    for a, b, c in zip(first.state_dict().values(), second.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not second.training


# -- (b) the parser --------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    (b"\x01\x00", 0),
    (b"\x01\x02", 2),
    (b"\x81\x1c", -28),
    (b"\x02\x00\x01", 256),
    (b"\x03\x0a\xd7\xa3", 0xA3D70A),
    (b"\x88" + b"\xff" * 7 + b"\x7f", -(2**63 - 1)),
])
def test_compact_int_round_trip(raw, value):
    assert decode_compact_int(raw) == (value, len(raw))
    assert encode_compact_int(value) == raw


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x03\x01\x02", b"\x19\x01", b"\x09" + b"\x01" * 9])
def test_compact_int_malformed(raw):
    with pytest.raises(DlibFormatError):
        decode_compact_int(raw)


def test_file_opens_with_loss_floats(model_path):
    with open(model_path, "rb") as fh:
        r = DlibReader(fh.read(64), model_path)
    assert r.int() == 1  # add_loss_layer version
    assert r.string() == "loss_metric_2"
    assert r.float() == pytest.approx(0.04, abs=1e-8)  # margin
    assert r.float() == pytest.approx(0.6, abs=1e-7)  # distance threshold


def test_layer_records(model_path):
    layers = read_dlib_resnet_weights(model_path)
    assert layers[0].kind == "input" and layers[0].attrs["size"] == (150, 150)
    assert layers[0].attrs["mean_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert layers[-1].kind == "loss" and layers[-1].attrs["margin"] == pytest.approx(0.04)
    convs = [rec for rec in layers if rec.kind == "con"]
    assert len(convs) == 29 and convs[0].arrays["weight"].shape == (32, 3, 7, 7)
    assert layers[-2].kind == "fc" and layers[-2].arrays["weight"].shape == (128, 256)


def test_malformed_file_names_it(tmp_path, model_path):
    with open(model_path, "rb") as fh:
        head = fh.read(50_000)
    for name, data in [("truncated.dat", head), ("garbage.dat", b"\x01\x01\x07garbage" + b"\xff" * 64)]:
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=name):
            read_dlib_resnet_weights(bad)


# -- (c) differentiable, dlib's padded add ----------------------------------------------


def test_gradient_wrt_input(model):
    x = (torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(0)) * 255).requires_grad_(True)
    model.descriptor(x).norm(dim=1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_dlib_add_pads_at_the_end():
    a = torch.ones(1, 2, 3, 3, requires_grad=True)
    b = torch.full((1, 1, 4, 4), 2.0)
    out = dlib_add(a, b)
    assert out.shape == (1, 2, 4, 4)
    expected = torch.zeros(1, 2, 4, 4)
    expected[:, :2, :3, :3] += 1
    expected[:, :1] += 2
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    torch.testing.assert_close(a.grad, torch.ones_like(a))
