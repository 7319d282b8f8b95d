"""Alignment geometry and detection on real photos."""
import csv
import warnings

import cv2
import numpy as np
import pytest

from plqa_nb import stages
from plqa_nb.alignment import (ARCFACE_TEMPLATE_112, align_face, apply_affine, box_transform, similarity_transform,
                               take_aligned, warp_to_image)
from plqa_nb.cli import main
from plqa_nb.data import astronaut
from plqa_nb.detection import detect_faces
from plqa_nb.errors import InputError
from plqa_nb.pipeline import Explainer


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    a = 0.4
    true = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 12.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -5.0]])
    np.testing.assert_allclose(similarity_transform(src, apply_affine(true, src)), true, atol=1e-9)


def test_box_transform_maps_box_corners_to_crop_corners():
    m = box_transform(np.array([10.0, 20.0, 110.0, 170.0]), 160)
    np.testing.assert_allclose(apply_affine(m, [[10, 20], [110, 170]]), [[0, 0], [160, 160]])


def test_real_face_lands_on_arcface_template_and_maps_warp_back():
    photo = astronaut()
    det = detect_faces(photo, "astronaut")
    assert det.faces_found == 1
    face = align_face(photo, det, 112, ARCFACE_TEMPLATE_112)
    assert face.crop.shape == (112, 112, 3)
    assert np.abs(face.landmarks - ARCFACE_TEMPLATE_112).max() < 6.0  # px on a 112-px crop
    back, cover = warp_to_image(np.ones((112, 112), np.float32), face.matrix, photo.shape)
    x1, y1, x2, y2 = det.box.astype(int)
    assert cover[(y1 + y2) // 2, (x1 + x2) // 2] and not cover[0, 0]
    assert back[cover].mean() > 0.95


def test_aligned_crops_are_taken_as_they_are(faces_dir, tmp_path):
    stages._CROP_SIZED_SEEN.discard("dlib-resnet")
    photos, aligned = Explainer(), Explainer(detector="aligned")
    folder = tmp_path / "crops"
    folder.mkdir()
    for name in ("001", "002"):
        face = photos.prepare(faces_dir / "london" / "neutral" / f"{name}.jpg")
        cv2.imwrite(str(folder / f"{name}.png"), face.aligned.crop[..., ::-1])
        again = aligned.prepare(folder / f"{name}.png")
        np.testing.assert_array_equal(again.aligned.crop, face.aligned.crop)
        np.testing.assert_allclose(again.aligned.landmarks, photos.backbone.template)
        assert again.detection.faces_found == 1
        # what a detector makes of the same crop: resampled and cut a little differently (and it says so)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            redetected = photos.prepare(folder / f"{name}.png")
        assert len([w for w in said if "--detector aligned" in str(w.message)]) == (name == "001")  # once a run
        assert np.abs(redetected.aligned.crop.astype(int) - face.aligned.crop).mean() > 5
        # a crop at twice the size is brought to the network's
        big = cv2.resize(face.aligned.crop, (300, 300), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(tmp_path / "big.png"), big[..., ::-1])
        assert np.abs(aligned.prepare(tmp_path / "big.png").aligned.crop.astype(int) - face.aligned.crop).mean() < 2
    cv2.imwrite(str(folder / "wide.png"), np.zeros((150, 200, 3), np.uint8))
    with pytest.raises(InputError, match="wide.png.*must be square"):
        aligned.prepare(folder / "wide.png")
    with pytest.raises(ValueError, match="landmark template"):
        take_aligned(np.zeros((160, 160, 3), np.uint8), "x.png", 160, None)
    assert main(["explain", str(folder), "--detector", "aligned", "--out", str(tmp_path / "out")]) == 0
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(tmp_path / "out" / "results.csv"))}
    assert [rows[f]["status"] for f in ("001.png", "002.png", "wide.png")] == ["ok", "ok", "error"]
    assert "must be square" in rows["wide.png"]["error"]
