"""Calibration bundles: the shipped ones are `plqa calibrate`'s own output and reproduce the values the package
shipped before them; a network the package has never seen gets a calibrated Q̂ and a flagged region from
`plqa calibrate --backbone onnx:FILE` followed by `plqa explain --calibration BUNDLE`."""
from __future__ import annotations

import csv
import json
import re
import shutil

import cv2
import numpy as np
import pytest

from conftest import skip_or_fail
from plqa_nb.backbones import load_backbone
from plqa_nb.cli import main
from plqa_nb.config import CalibrationBundle, shipped_bundle, shipped_bundle_path
from plqa_nb.detection import DETECTORS
from plqa_nb.errors import ModelUnavailableError
from plqa_nb.pipeline import Explainer
from plqa_nb.regions import covered_regions, region_masks
from tolerances import SHIPPED_SCALING_REL

BUILT_IN = ("dlib-resnet", "sface")


@pytest.mark.parametrize("backbone", BUILT_IN)
def test_the_shipped_bundle_is_the_commands_output_for_these_weights(backbone):
    """Every built-in network ships a bundle written by `plqa calibrate` on the London smiling photos (the command
    line is in it), for the weights that load, with a utility head whose length fits the network's inputs, ERS's
    centre, and a compliant-face norm over the network's own feature taps."""
    try:
        net = load_backbone(backbone)
    except ModelUnavailableError as exc:
        skip_or_fail(str(exc))
    bundle = shipped_bundle(backbone)
    assert bundle is not None and bundle.weights_sha1 == net.fingerprint()
    assert bundle.made_with.startswith(f"plqa calibrate ../shared/faces/london/smiling --backbone {backbone} ")
    assert "CC BY 4.0" in bundle.made_with and bundle.photos == 102 and bundle.default_estimator == "utility"
    # the crops it was fitted on depend on the detector, so its command names it
    assert re.search(r" --detector (\S+) ", bundle.made_with).group(1) in DETECTORS
    assert {"utility", "ers", "serfiq"} <= set(bundle.estimators) <= {"utility", "ers", "serfiq", "faceqan"}
    limits = dict(re.findall(r"\b(faceqan):(\d+)\b", bundle.made_with))  # FaceQAN on the first N photos only
    assert all(e.photos == int(limits.get(name, 102)) for name, e in bundle.estimators.items())
    assert ("faceqan" in limits) == ("faceqan" in bundle.estimators)
    explainer = Explainer(backbone)
    assert explainer.config.quality == "utility" and explainer.config.source == str(shipped_bundle_path(backbone))
    assert explainer.compliant_norm().features.taps == tuple(net.feature_taps)
    assert len(bundle.estimators["ers"].state["ui_centre"]) == net.head(net.trunk(_blank(net))).shape[1]
    assert CalibrationBundle.from_record(json.loads(bundle.text())) == bundle  # the file says it all


def _blank(net):
    import torch

    return torch.full((1, 3, net.crop_size, net.crop_size), 127.0)


def test_dlib_bundle_reproduces_the_values_shipped_before_it():
    """The dlib-resnet bundle, refitted by `plqa calibrate`, against the (α, r) literals and γ the package shipped
    before bundles existed (fitted by the same code on the same photos on another machine): equal to the named
    relative tolerance."""
    before = {"utility": (121.88, 0.93007), "ers": (144.94, 0.068983), "serfiq": (264.77, 0.469237),
              "faceqan": (12.383, 0.694654)}
    bundle = shipped_bundle("dlib-resnet")
    assert {"utility", "ers", "serfiq"} <= set(bundle.estimators)
    for name, (alpha, r) in before.items():
        if name not in bundle.estimators:
            continue
        fitted = bundle.estimators[name]
        assert fitted.alpha == pytest.approx(alpha, rel=SHIPPED_SCALING_REL), name
        assert fitted.r == pytest.approx(r, rel=SHIPPED_SCALING_REL), name
    assert bundle.estimators["utility"].gamma == pytest.approx(11.83, rel=SHIPPED_SCALING_REL)


def test_a_network_the_package_has_never_seen(faces_dir, tmp_path):
    """An ONNX file under a new name (SFace's, copied: no shipped bundle matches the name) is calibrated on 8
    development photos and then explains a held-out photo and a copy with a black band over the eyes: Q̂ comes
    from the bundle, and the region flagged is one the band covers (as the ICAO experiment judges its flags)."""
    from plqa_nb.backbones.sface import sface_model_path

    try:
        source = sface_model_path()
    except ModelUnavailableError as exc:
        skip_or_fail(str(exc))
    model = tmp_path / "never_seen.onnx"
    shutil.copyfile(source, model)
    name = f"onnx:{model}"
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(1, 9):
        shutil.copyfile(faces_dir / "london" / "smiling" / f"{i:03d}.jpg", dev / f"{i:03d}.jpg")
    bundle_path = tmp_path / "bundle.json"
    assert main(["calibrate", str(dev), "--backbone", name, "--estimators", "ers", "--folds", "4",
                 "--out", str(bundle_path)]) == 0
    record = json.loads(bundle_path.read_text())
    assert record["backbone"] == name and record["weights_sha1"] == load_backbone(name).fingerprint()
    photo = faces_dir / "london" / "neutral" / "020.jpg"
    banded = tmp_path / "photos" / "020_band.png"
    banded.parent.mkdir()
    shutil.copyfile(photo, banded.parent / "020.jpg")
    explainer = Explainer(name, calibration=bundle_path)
    band = _eye_band(explainer, photo, banded)
    out = tmp_path / "out"
    assert main(["explain", str(banded.parent), "--backbone", name, "--calibration", str(bundle_path),
                 "--out", str(out)]) == 0
    with open(out / "results.csv") as f:
        rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}
    assert {r["status"] for r in rows.values()} == {"ok"} and {r["quality_method"] for r in rows.values()} == {"ers"}
    ers = record["estimators"]["ers"]
    for r in rows.values():  # Q̂ is Eq. 2 of the raw quality with the bundle's α and r
        expected = 1 / (1 + np.exp(-ers["alpha"] * (float(r["quality_raw"]) - ers["r"])))
        assert float(r["quality"]) == pytest.approx(expected, abs=2e-6)
    aligned = explainer.prepare(banded).aligned
    size = aligned.crop.shape[0]
    band = cv2.warpAffine(band.astype(np.uint8), aligned.matrix, (size, size), flags=cv2.INTER_NEAREST) > 0
    covered = covered_regions(band, region_masks(aligned.landmarks, size))
    assert "eyes" in covered and rows["020_band.png"]["flagged_region"] in covered, (covered, rows["020_band.png"])
    assert float(rows["020_band.png"]["quality"]) < float(rows["020.jpg"]["quality"])


def _eye_band(explainer: Explainer, photo, out) -> np.ndarray:
    """Write ``photo`` with a black band over both eyes (from the detector's landmarks) to ``out``; return the band,
    bool [H, W]."""
    prepared = explainer.prepare(photo)
    eyes = prepared.detection.landmarks[:2]
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    (x0, y0), (x1, y1) = eyes.min(0) - [0.45 * iod, 0.25 * iod], eyes.max(0) + [0.45 * iod, 0.25 * iod]
    band = np.zeros(prepared.photo.shape[:2], bool)
    band[int(y0):int(y1), int(x0):int(x1)] = True
    image = prepared.photo.copy()
    image[band] = 0
    cv2.imwrite(str(out), image[..., ::-1])
    return band
