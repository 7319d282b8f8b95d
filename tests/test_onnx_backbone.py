"""Any ONNX network as a backbone: cleaning, folding of (block-)quantised weights, conversion, the trunk/head split,
the cache, the ``onnx:PATH?options`` names and their errors. Small graphs written here with ``onnx.helper`` (random
weights: plumbing only); the real network is in test_sface.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from plqa_nb.backbones import backbone_spec, load_backbone  # noqa: E402
from plqa_nb.backbones.onnx_backbone import OnnxBackbone, arcface_template, parse_onnx_name  # noqa: E402
from plqa_nb.backbones.onnx_import import (clean_graph, head_index, load_onnx_split, prepared_cache_path,  # noqa: E402
                                           read_onnx)
from plqa_nb.config import resolve_config  # noqa: E402
from tolerances import ONNX_CONVERSION_REL, max_relative  # noqa: E402

CROP = 32


def _toy_model(extra_op: str | None = None, linear_head: bool = True, fixed_batch: bool = False, seed: int = 0):
    """data [1,3,32,32] → conv 3×3/2 (int8 weights, DequantizeLinear with block size 9, opset 21) → PRelu
    [→ ``extra_op``] → conv 3×3/2 → Flatten → Gemm 1024→16 → BatchNormalization, with two declared inputs that no
    node reads. ``linear_head=False`` ends at the Flatten instead; ``fixed_batch`` flattens with a Reshape to
    [1, -1], as some exporters write it."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-127, 128, size=(8, 27), dtype=np.int8)
    scales = rng.uniform(0.001, 0.01, size=(8, 3)).astype(np.float32)
    init = [numpy_helper.from_array(q, "w1_q"), numpy_helper.from_array(scales, "w1_scale"),
            numpy_helper.from_array(np.zeros((8, 3), np.int8), "w1_zero"),
            numpy_helper.from_array(np.array([8, 3, 3, 3], np.int64), "w1_shape"),
            numpy_helper.from_array(np.array([1, -1], np.int64), "one_row"),
            numpy_helper.from_array(rng.uniform(0.1, 0.3, (8, 1, 1)).astype(np.float32), "slope"),
            numpy_helper.from_array(rng.normal(0, 0.1, (16, 8, 3, 3)).astype(np.float32), "w2"),
            numpy_helper.from_array(rng.normal(0, 0.05, (16, 1024)).astype(np.float32), "fc_w"),
            numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "fc_b")]
    init += [numpy_helper.from_array(v.astype(np.float32), f"bn_{k}") for k, v in
             (("scale", rng.uniform(0.5, 1.5, 16)), ("bias", rng.normal(0, 0.1, 16)),
              ("mean", rng.normal(0, 0.1, 16)), ("var", rng.uniform(0.5, 1.5, 16)))]
    nodes = [helper.make_node("DequantizeLinear", ["w1_q", "w1_scale", "w1_zero"], ["w1_flat"], name="dq1",
                              axis=1, block_size=9),
             helper.make_node("Reshape", ["w1_flat", "w1_shape"], ["w1"], name="reshape_w1"),
             helper.make_node("Conv", ["data", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("PRelu", ["c1", "slope"], ["a1"], name="prelu1")]
    last = "a1"
    if extra_op:
        nodes.append(helper.make_node(extra_op, [last], ["x1"], name="odd"))
        last = "x1"
    nodes += [helper.make_node("Conv", [last, "w2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                               strides=[2, 2]),
              helper.make_node("Reshape", ["c2", "one_row"], ["flat"], name="flatten") if fixed_batch else
              helper.make_node("Flatten", ["c2"], ["flat"], name="flatten")]
    out = "flat"
    if linear_head:
        nodes += [helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], name="fc", transB=1),
                  helper.make_node("BatchNormalization", ["fc", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["emb"],
                                   name="bn")]
        out = "emb"
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, CROP, CROP]),
              helper.make_tensor_value_info("unused_a", TensorProto.FLOAT, [1]),
              helper.make_tensor_value_info("unused_b", TensorProto.FLOAT, [4])]
    graph = helper.make_graph(nodes, "toy", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              initializer=init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLQA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def toy_path(tmp_path, cache):
    path = tmp_path / "toy.onnx"
    onnx.save(_toy_model(), path)
    return path


def _crops(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, CROP, CROP, generator=torch.Generator().manual_seed(seed)) * 255


def _reference(path, crop: torch.Tensor) -> np.ndarray:
    """ONNX's own reference evaluator on the file as written (unused inputs fed zeros)."""
    model = read_onnx(path)
    feeds = {"data": crop[None].numpy(), "unused_a": np.zeros(1, np.float32), "unused_b": np.zeros(4, np.float32)}
    return ReferenceEvaluator(model).run(None, feeds)[0][0]


def test_clean_graph_drops_unused_inputs(toy_path):
    model = read_onnx(toy_path)
    clean_graph(model)
    assert [i.name for i in model.graph.input] == ["data"]


def test_conversion_matches_onnx_reference(toy_path):
    """Folded int8 block-quantised weights, lowered opset and the split give ONNX's own result, per image of a
    batch (the graph declares batch 1)."""
    split = load_onnx_split(toy_path)
    assert split.head_node == "fc"
    x = _crops(3)
    with torch.no_grad():
        features = split.trunk(x)
        raw = split.head(features)
    assert features.shape == (3, 1024) and raw.shape == (3, 16)
    for i in range(3):
        assert max_relative(raw[i], _reference(toy_path, x[i])) < ONNX_CONVERSION_REL


def test_head_at_a_named_node(toy_path):
    split = load_onnx_split(toy_path, head="bn")
    x = _crops(2)
    with torch.no_grad():
        assert split.trunk(x).shape == (2, 16)
        torch.testing.assert_close(split.head(split.trunk(x)), load_onnx_split(toy_path).head(
            load_onnx_split(toy_path).trunk(x)))
    with pytest.raises(ValueError, match=r"toy\.onnx has no node named 'nope'"):
        load_onnx_split(toy_path, head="nope")


def test_backbone_contract(toy_path):
    bb = OnnxBackbone(toy_path, crop_size=CROP, mean=0.0, std=1.0)
    assert bb.name == f"onnx:{toy_path}"
    np.testing.assert_allclose(bb.template, arcface_template(CROP))
    x = _crops(2).requires_grad_(True)
    emb = bb(x)
    assert emb.shape == (2, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    emb[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # scaling and channel order act on the input: the network sees (x - mean) / std in the order asked for
    bgr = OnnxBackbone(toy_path, crop_size=CROP, mean=127.5, std=127.5, channels="bgr")
    with torch.no_grad():
        torch.testing.assert_close(bgr(x), bb((x.flip(1) - 127.5) / 127.5))
    modules = dict(bb.named_modules())
    assert bb.feature_taps and all(t in modules for t in bb.feature_taps)


def test_errors_name_the_operator_and_the_file(tmp_path, cache):
    odd = tmp_path / "odd.onnx"
    onnx.save(_toy_model(extra_op="Shrink"), odd)
    with pytest.raises(ValueError, match=r"odd\.onnx.*cannot convert the operator\(s\) Shrink"):
        load_onnx_split(odd)
    not_onnx = tmp_path / "photo.onnx"
    not_onnx.write_bytes(b"\xff\xd8\xff\xe0 this is a JPEG, not a protobuf")
    with pytest.raises(ValueError, match=r"photo\.onnx is not an ONNX model"):
        load_onnx_split(not_onnx)
    headless = tmp_path / "headless.onnx"
    onnx.save(_toy_model(linear_head=False), headless)
    with pytest.raises(ValueError, match=r"headless\.onnx has no Gemm or MatMul node"):
        head_index(read_onnx(headless), None, str(headless))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_onnx_split(tmp_path / "missing.onnx")
    fixed = tmp_path / "fixed.onnx"
    onnx.save(_toy_model(fixed_batch=True), fixed)
    with pytest.raises(ValueError, match=r"fixed\.onnx: a batch of 2 crops gave .* not \[2, D\]"):
        OnnxBackbone(fixed, crop_size=CROP)


def test_a_crop_size_the_network_cannot_take(toy_path):
    with pytest.raises(ValueError, match=r"toy\.onnx does not run on 48-px crops"):
        OnnxBackbone(toy_path, crop_size=48)


def test_cache_written_once_and_a_damaged_or_stale_one_rebuilt(toy_path):
    cached = prepared_cache_path(toy_path)
    x = _crops(2)
    with torch.no_grad():
        first = load_onnx_split(toy_path)
        expected = first.head(first.trunk(x))
    with open(cached, "rb") as f:
        content = f.read()
    assert b"DequantizeLinear" not in content  # the weights were baked into float32
    for damage in (content[: len(content) // 2],  # truncated
                   toy_path.read_bytes()):  # stale: the unconverted graph under the cache's name
        with open(cached, "wb") as f:
            f.write(damage)
        with pytest.warns(UserWarning, match="ignoring unreadable cache"):
            again = load_onnx_split(toy_path)
        with torch.no_grad():
            torch.testing.assert_close(again.head(again.trunk(x)), expected)
        with open(cached, "rb") as f:
            assert f.read() == content  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_onnx_split(toy_path)  # a sound cache loads without a warning


def test_names_with_options(toy_path):
    name = f"onnx:{toy_path}?crop={CROP}&mean=0&std=1&channels=bgr&head=bn"
    kwargs = parse_onnx_name(name)
    assert kwargs == {"path": str(toy_path), "name": name, "crop_size": CROP, "mean": 0.0, "std": 1.0,
                      "channels": "bgr", "head": "bn"}
    spec = backbone_spec(name)  # registered on first use, without building the network
    assert spec.crop_size == CROP and spec.name == name
    config = resolve_config(name, "serfiq", alpha=1.0, r=0.0)
    assert config.backbone == name and config.crop_size == CROP
    bb = load_backbone(name)
    assert isinstance(bb, OnnxBackbone) and bb.name == name and bb.channels == "bgr" and bb.head_node == "bn"
    template = "1,2,3,4,5,6,7,8,9,10"
    np.testing.assert_array_equal(parse_onnx_name(f"onnx:{toy_path}?template={template}")["template"],
                                  np.arange(1, 11, dtype=float).reshape(5, 2))
    for bad, message in (("?crop=x", "bad crop='x'"), ("?std=0", "bad std='0'"), ("?channels=rgba", "bad channels"),
                         ("?colour=1", "unknown option 'colour'"), ("?template=1,2,3", "bad template")):
        with pytest.raises(ValueError, match=message):
            parse_onnx_name(f"onnx:{toy_path}{bad}")


def test_cli_names_what_is_wrong_with_a_backbone(toy_path, tmp_path, capsys):
    from plqa_nb.cli import main

    name = f"onnx:{toy_path}?crop={CROP}"
    for bad, message in (("resnet-9000", "unknown backbone 'resnet-9000'; available: dlib-resnet"),
                         (f"onnx:{toy_path.parent}/absent.onnx", "absent.onnx"),
                         (f"{name}&gamma=3", "unknown option 'gamma'")):
        assert main(["explain", str(toy_path), "--out", str(tmp_path / "out"), "--backbone", bad]) == 2
        assert message in capsys.readouterr().err
