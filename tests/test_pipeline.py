"""One pipeline, one configuration: the batch, staged and Captum paths agree; the configuration resolves in one
order, refuses mismatched calibration files and warns on fallbacks; no process-wide side effects."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from plqa_nb.attribution import get_method
from plqa_nb.backbones import CustomBackbone, load_backbone
from plqa_nb.config import CalibrationBundle, EstimatorCalibration, paper_bundle, shipped_bundle
from plqa_nb.config import CalibrationFallbackWarning, resolve_config
from plqa_nb.evaluation import compare_methods
from plqa_nb.pipeline import Explainer, FaceAnalysis, crops_to_tensor, explain
from plqa_nb.quality import Recognizability
from plqa_nb.stages import network_pass
from tolerances import PATH_PLQ_ATOL, PATH_QUALITY_ATOL, PATH_SALIENCY_REL, max_relative

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)

ESTIMATORS = {"utility": {}, "ers": {}, "serfiq": {"m": 10}, "faceqan": {"k": 2, "l": 1}}


@pytest.fixture(scope="module")
def analyses(faces_dir):
    """Two London photos as staged FaceAnalysis objects (their network pass is cached across the tests)."""
    return [FaceAnalysis(faces_dir / "london" / "neutral" / f"{i:03d}.jpg") for i in (1, 2)]


@pytest.fixture(scope="module")
def clip_value(analyses):
    """A gradient bound that binds on both faces: half the smallest |∂M_Q/∂I| norm under the default config."""
    config = resolve_config()
    norms = [float(a.maps(config)["attribution"].flatten(1).norm(dim=1)[0]) for a in analyses]
    return 0.5 * min(norms)


@pytest.mark.parametrize("clip", [False, True], ids=["no-clip", "clip"])
@pytest.mark.parametrize("norm", ["signed", "l1"])
@pytest.mark.parametrize("quality", list(ESTIMATORS))
def test_batch_staged_and_captum_paths_agree(analyses, clip_value, quality, norm, clip):
    """The batch Explainer, the staged FaceAnalysis and `plqa compare`'s saliency (Captum on M_Q) give the same
    Q̂ and maps, for every estimator, both Eq. 3 norms, with and without gradient clipping."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationFallbackWarning)  # γ of the other norm: fine for agreement
        config = resolve_config("dlib-resnet", quality, norm=norm, quality_params=ESTIMATORS[quality],
                                clip_grad=clip_value if clip else None, seed=3)
    crops = crops_to_tensor([a.aligned("dlib-resnet").crop for a in analyses])
    explainer = Explainer(config=config)
    batch = explainer.explain_tensor(crops)
    captum = compare_methods(explainer, crops, ["saliency"], steps=1, n_random=1, infidelity_samples=0, seed=3)
    for i, a in enumerate(analyses):
        staged = a.explain(config)
        assert staged.quality == pytest.approx(float(batch["quality"][i]), abs=PATH_QUALITY_ATOL)
        assert float(captum.quality[i]) == pytest.approx(float(batch["quality"][i]), abs=PATH_QUALITY_ATOL)
        assert max_relative(staged.saliency, batch["saliency"][i]) < PATH_SALIENCY_REL
        assert max_relative(captum.methods["saliency"].saliency[i], batch["saliency"][i]) < PATH_SALIENCY_REL
        assert np.abs(staged.plq - batch["plq"][i].numpy()).max() < PATH_PLQ_ATOL
    if clip:  # the bound binds: every face's gradient sits on it
        norms = batch["attribution"].flatten(1).norm(dim=1)
        torch.testing.assert_close(norms, torch.full_like(norms, clip_value), rtol=1e-4, atol=0)


def test_a_new_setting_recomputes_only_its_stage(faces_dir):
    a = FaceAnalysis(faces_dir / "london" / "neutral" / "003.jpg")
    config = resolve_config()
    base = a.explain(config)
    counts = dict(a.computed)
    assert counts == {"detection": 1, "alignment": 1, "network": 1, "quality": 1}
    lower = a.explain(config.replace(gamma=config.gamma - 1.5))
    assert dict(a.computed) == counts  # γ: v(·) re-applied
    np.testing.assert_array_equal(lower.saliency, base.saliency)
    assert lower.plq.mean() < base.plq.mean()
    scaled = a.explain(config.replace(alpha=config.alpha / 3, r=config.r + 0.02))
    assert dict(a.computed) == counts  # α, r: the map rescales with Q̂ (Eq. 3 is linear in it)
    np.testing.assert_allclose(scaled.saliency, base.saliency * scaled.quality / base.quality, rtol=1e-5)
    a.explain(config.with_estimator("serfiq", {"m": 5}))
    assert a.computed["quality"] == 2 and a.computed["network"] == 1


# -- one configuration ---------------------------------------------------------------------------------------
def _calibration(tmp_path, backbone="dlib-resnet", norm="l1", **ers):
    """A bundle file calibrating ERS only (α 20, r 0.3, γ 11 unless given), with the shipped centre and norm."""
    shipped = shipped_bundle("dlib-resnet")
    bundle = CalibrationBundle(backbone=backbone, norm=norm, default_estimator="ers",
                               estimators={"ers": EstimatorCalibration(**{"alpha": 20.0, "r": 0.3, "gamma": 11.0,
                                                                          "state": shipped.estimators["ers"].state,
                                                                          **ers})},
                               weights_sha1=shipped.weights_sha1, compliant_norm=shipped.compliant_norm)
    path = tmp_path / "calib.json"
    path.write_text(bundle.text())
    return path


def test_shipped_bundle_then_calibration_then_arguments(tmp_path):
    default = resolve_config()
    shipped = shipped_bundle("dlib-resnet")
    fitted = shipped.estimators[shipped.default_estimator]
    assert (default.quality, default.norm) == (shipped.default_estimator, shipped.norm)
    assert (default.alpha, default.r, default.gamma) == (fitted.alpha, fitted.r, fitted.gamma)
    assert default.compliant_norm and default.weights_sha1 == load_backbone("dlib-resnet").fingerprint()
    path = _calibration(tmp_path)
    from_file = resolve_config(calibration=path)
    assert (from_file.quality, from_file.alpha, from_file.r, from_file.gamma) == ("ers", 20.0, 0.3, 11.0)
    assert from_file.source == str(path)
    explicit = resolve_config(calibration=path, gamma=9.0, seed=4)
    assert (explicit.alpha, explicit.gamma, explicit.seed) == (20.0, 9.0, 4)
    assert explicit == resolve_config(calibration=json.loads(path.read_text()), gamma=9.0, seed=4)  # by content
    assert explicit.with_estimator("ers").alpha == 20.0  # switching estimators keeps the bundle


@pytest.mark.parametrize("fields, option, message", [
    ({}, {"quality": "serfiq"}, "fitted for quality estimator\\(s\\) ers, not 'serfiq'"),
    ({"backbone": "facenet-vggface2"}, {}, "fitted for backbone 'facenet-vggface2', not 'dlib-resnet'"),
    ({}, {"norm": "signed"}, "fitted for Eq. 3 norm 'l1', not 'signed'")])
def test_a_bundle_for_something_else_is_refused(tmp_path, fields, option, message):
    path = _calibration(tmp_path, **fields)
    with pytest.raises(ValueError, match=message):
        resolve_config("dlib-resnet", calibration=path, **option)


def test_a_bundle_for_other_weights_is_refused_when_the_network_loads(tmp_path):
    record = json.loads(_calibration(tmp_path).read_text())
    record["weights_sha1"] = "0" * 40
    with pytest.raises(ValueError, match="fitted for other weights of 'dlib-resnet'"):
        Explainer("dlib-resnet", calibration=record)


@pytest.mark.parametrize("record, message", [
    ({"alpha": 20.0, "r": 0.3, "gamma": 11.0, "backbone": "dlib-resnet"}, "older plqa_nb version"),
    ({"schema": "plqa-calibration", "schema_version": 99}, "schema version 99"),
    ({"schema": "plqa-calibration", "schema_version": 1, "backbone": "dlib-resnet"}, "malformed"),
    ([1, 2], "no JSON object")])
def test_a_file_that_is_not_a_current_bundle_is_refused_by_name(tmp_path, record, message):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        resolve_config("dlib-resnet", calibration=path)


def test_the_cli_refuses_the_mismatch_the_issue_found(tmp_path, faces_dir, capsys):
    """`plqa quality --quality serfiq --calibration ers.json` once gave Q̂ = 1.0 for every face, silently."""
    from plqa_nb.cli import main

    path = _calibration(tmp_path)
    photo = faces_dir / "london" / "neutral" / "001.jpg"
    assert main(["quality", str(photo), "--quality", "serfiq", "--calibration", str(path),
                 "--out", str(tmp_path / "q.csv")]) == 2
    assert "fitted for quality estimator(s) ers, not 'serfiq'" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()


def test_every_fallback_warns():
    with pytest.warns(CalibrationFallbackWarning, match="no calibrated scaling for estimator 'ers'"):
        config = resolve_config("facenet-vggface2", "ers")
    assert (config.alpha, config.r) == (1.0, 0.0)
    with pytest.warns(CalibrationFallbackWarning, match="the paper's values"):
        assert resolve_config("facenet-vggface2").source.endswith("(the paper's values)")
    with pytest.warns(CalibrationFallbackWarning, match="fitted with the 'l1' Eq. 3 norm"):
        resolve_config("dlib-resnet", norm="signed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_config("dlib-resnet", norm="signed", gamma=7.0)  # given explicitly: no fallback
        resolve_config()


def test_reading_the_defaults_builds_no_network(monkeypatch):
    import plqa_nb.backbones as registry

    spec = registry.backbone_spec("facenet-casia")
    monkeypatch.setitem(registry._SPECS, "facenet-casia", spec.__class__(
        spec.name, lambda: pytest.fail("the network was built"), spec.defaults, spec.crop_size))
    with pytest.warns(CalibrationFallbackWarning, match="the paper's values"):
        config = resolve_config("facenet-casia")
    assert (config.quality, config.crop_size) == ("serfiq", 160)
    assert (config.alpha, config.gamma) == (paper_bundle("facenet").estimators["serfiq"].alpha,
                                            paper_bundle("facenet").estimators["serfiq"].gamma)


def test_explain_keys_its_cache_by_content(tmp_path, faces_dir):
    photo = faces_dir / "london" / "neutral" / "004.jpg"
    path = _calibration(tmp_path, alpha=30.0)
    first = explain(photo, calibration=path).quality
    record = json.loads(path.read_text())
    record["estimators"]["ers"]["r"] = 0.0
    path.write_text(json.dumps(record))  # same path, new content
    second = explain(photo, calibration=path).quality
    assert second > first + 0.1  # r fell by 0.3 at α = 30: the cached scaling was not reused


# -- no hidden global state ------------------------------------------------------------------------------------
def test_importing_the_package_leaves_matplotlib_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import plqa_nb, plqa_nb.widgets, plqa_nb.figures, "
            "plqa_nb.experiments.plots, plqa_nb.evaluation.plots; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_an_estimator_without_its_state_names_plqa_calibrate():
    torch.manual_seed(0)
    net = CustomBackbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(8)), torch.nn.Linear(8, 4),
                         name="dlib-resnet", crop_size=16)
    net(torch.zeros(1, 3, 16, 16))  # materialise the lazy layer
    with pytest.raises(ValueError, match="no unrecognisable-identity centre for backbone 'dlib-resnet'"):
        Recognizability().raw(net, torch.zeros(1, 3, 16, 16))


def test_a_passed_in_module_is_never_moved_in_place():
    torch.manual_seed(0)
    net = CustomBackbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 8)),
                         torch.nn.Linear(8, 4), crop_size=16)
    assert load_backbone(net, "cpu") is net
    moved = load_backbone(net, "meta")
    assert moved is not net and next(moved.parameters()).device.type == "meta"
    assert next(net.parameters()).device.type == "cpu"


def test_methods_are_built_per_call_with_their_parameters():
    a, b = get_method("integrated-gradients"), get_method("integrated-gradients", n_steps=5)
    assert a is not get_method("integrated-gradients") and (a.n_steps, b.n_steps) == (20, 5)


def test_network_pass_gradient_is_that_of_the_unit_model(analyses):
    x = analyses[0].crops("dlib-resnet")
    net = network_pass(load_backbone("dlib-resnet"), x)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(load_backbone("dlib-resnet")(xr).sum(), xr)
    torch.testing.assert_close(net.unit_gradient, g)
    torch.testing.assert_close(net.unit_norm, g.flatten(1).norm(dim=1))


@pytest.mark.parametrize("backbone", ["dlib-resnet", "sface", "facenet-random"])
def test_two_threads_explain_at_once_as_one_does_after_the_other(london_crops, backbone):
    """A reentrant network (``Backbone.reentrant``) explains two batches at once on two threads, as a serial run does
    (``scale.SERIAL_COMPUTES``), with the results of one batch after the other, bit for bit: Q̂, embedding, PLQ map
    and, where the network has a compliant-face norm, the deviation map from the feature maps each pass taps for
    itself (``backbones.base.module_outputs``). FaceNet's random weights stand for the architecture here."""
    import threading

    import cv2

    from plqa_nb.bench import load_bench_backbone, timing_bundle
    from plqa_nb.scale import torch_threads

    net = load_bench_backbone(backbone, torch.device("cpu"))[0]
    size = net.crop_size
    crops = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in london_crops[:4]]
    batches = [crops_to_tensor(crops[:2], "cpu"), crops_to_tensor(crops[2:], "cpu")]
    explainer = Explainer(net, calibration=timing_bundle(net, batches[0][:1]) if backbone == "facenet-random" else None)
    assert explainer.reentrant and explainer.has_compliant_norm == (backbone != "facenet-random")
    keys = ("quality", "embedding", "plq", "deviation")[:4 if explainer.has_compliant_norm else 3]
    with torch_threads(1):  # one thread per pass, the serial run's setting on 2 cores
        alone = [explainer.explain_tensor(x) for x in batches]
        together: dict[int, list] = {0: [], 1: []}
        start = threading.Barrier(2)

        def run(k: int) -> None:
            for _ in range(3):
                start.wait(timeout=60)
                together[k].append(explainer.explain_tensor(batches[k]))

        threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    for k in (0, 1):
        assert len(together[k]) == 3
        for out in together[k]:
            for key in keys:
                assert torch.equal(out[key], alone[k][key]), (k, key)
