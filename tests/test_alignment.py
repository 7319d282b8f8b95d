"""Alignment geometry and detection on real photos."""
import numpy as np
import pytest

from plqa_nb.alignment import (ARCFACE_TEMPLATE_112, align_face, apply_affine, box_transform, similarity_transform,
                               warp_to_image)
from plqa_nb.data import astronaut
from plqa_nb.detection import detect_faces
from plqa_nb.errors import NoFaceError


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


def test_no_face_in_noise():
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="noise.png: no face"):
        detect_faces(noise, "noise.png")


def test_two_faces_takes_largest_and_counts(faces_dir):
    import cv2
    from PIL import Image

    a = np.asarray(Image.open(faces_dir / "london/neutral/001.jpg").convert("RGB"))
    b = cv2.resize(np.asarray(Image.open(faces_dir / "london/neutral/002.jpg").convert("RGB")), None, fx=0.6, fy=0.6)
    canvas = np.full((a.shape[0], a.shape[1] + b.shape[1], 3), 128, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1]:] = b
    det = detect_faces(canvas, "two")
    assert det.faces_found == 2
    assert det.box[2] <= a.shape[1] + 5  # the larger face is the left one
