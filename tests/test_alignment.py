"""Alignment geometry and detection on real photos."""
import numpy as np

from plqa_nb.alignment import (ARCFACE_TEMPLATE_112, align_face, apply_affine, box_transform, similarity_transform,
                               warp_to_image)
from plqa_nb.data import astronaut
from plqa_nb.detection import detect_faces


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
