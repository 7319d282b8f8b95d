"""Stage 2: align a detected face to a backbone's crop.

Each alignment is a 2×3 affine matrix ``M`` that maps original-image pixels to crop
pixels; the crop is ``cv2.warpAffine(image, M, (S, S))`` and maps computed on the
crop are warped back onto the photo with the inverse of ``M``.

Templates ([5, 2], crop pixels, MTCNN landmark order):
* ArcFace: the standard 112×112 five-point template of insightface-style models.
* dlib: where MTCNN's points fall, on average, inside dlib's 150-px face chip
  (padding 0.25), measured with ``research/derive_dlib_template.py``.
* FaceNet (facenet-pytorch): no template: the detector box is resized to 160×160.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detection import Detection
from .errors import InputError

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


@dataclass(frozen=True)
class AlignedFace:
    """A face crop and the geometry that produced it.

    crop: uint8 [S, S, 3]; matrix: [2, 3] original → crop pixels; landmarks: [5, 2] in crop pixels.
    """

    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) src → dst, as [2, 3].

    Umeyama's closed form; src, dst: [N, 2].
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / (s0 ** 2).sum(1).mean()
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def box_transform(box: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Affine [2, 3] that maps a detector box (x1, y1, x2, y2), grown by ``margin`` crop px, to size×size."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    mx = margin * (x2 - x1) / max(size - margin, 1)
    my = margin * (y2 - y1) / max(size - margin, 1)
    x1, x2, y1, y2 = x1 - mx / 2, x2 + mx / 2, y1 - my / 2, y2 + my / 2
    sx, sy = size / (x2 - x1), size / (y2 - y1)
    return np.array([[sx, 0.0, -sx * x1], [0.0, sy, -sy * y1]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points [N, 2] with an affine [2, 3]."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of an affine [2, 3]."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def align_face(rgb: np.ndarray, detection: Detection, crop_size: int, template: np.ndarray | None) -> AlignedFace:
    """Cut the crop of a backbone: similarity to ``template`` if given, else the detector box."""
    if template is not None:
        matrix = similarity_transform(detection.landmarks, template)
    else:
        matrix = box_transform(detection.box, crop_size)
    crop = cv2.warpAffine(rgb, matrix, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return AlignedFace(crop=crop, matrix=matrix, landmarks=apply_affine(matrix, detection.landmarks))


NEEDS_TEMPLATE = ("aligned crops (detector 'aligned') need a backbone with a landmark template; this one crops the "
                  "detector's box: give it photos and a detector")


def take_aligned(rgb: np.ndarray, source: str, crop_size: int, template: np.ndarray | None
                 ) -> tuple[Detection, AlignedFace]:
    """An image that is already a backbone's aligned crop (``detection.ALIGNED``), taken as it is, without a
    detector: a square of any side, resized to ``crop_size`` (area interpolation to shrink, linear to grow), its
    landmarks where the ``template`` puts them. Re-detecting and re-aligning such a crop resamples it and cuts a
    slightly different square (on London crops: 14-24 grey levels apart on average, and most compliant faces then
    get a region flagged). The Detection is the whole image, one face, confidence 1.

    Raises InputError (naming ``source``) for an image that is not square, ValueError for a backbone without a
    template (its crop is a detector box: there are no landmarks to assume).
    """
    if template is None:
        raise ValueError(NEEDS_TEMPLATE)
    h, w = rgb.shape[:2]
    if h != w:
        raise InputError(source, f"image is {w}×{h} px: an aligned crop (--detector aligned) must be square")
    k = crop_size / w
    crop = rgb if w == crop_size else cv2.resize(rgb, (crop_size, crop_size),
                                                 interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    matrix = np.array([[k, 0.0, 0.5 * (k - 1)], [0.0, k, 0.5 * (k - 1)]])  # cv2.resize's pixel-centre convention
    landmarks = np.asarray(template, np.float64)
    detection = Detection(box=np.array([0.0, 0.0, w, h]), landmarks=apply_affine(invert_affine(matrix), landmarks),
                          confidence=1.0, faces_found=1)
    return detection, AlignedFace(crop=np.ascontiguousarray(crop), matrix=matrix, landmarks=landmarks)


def warp_to_image(crop_map: np.ndarray, matrix: np.ndarray, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp a map in crop coordinates [S, S] back onto the photo [H, W].

    Returns (map [H, W] float32, coverage mask [H, W] bool: pixels the crop covers).
    """
    h, w = image_shape[:2]
    inv = invert_affine(matrix)
    m = cv2.warpAffine(crop_map.astype(np.float32), inv, (w, h), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cover = cv2.warpAffine(np.ones(crop_map.shape, np.uint8), inv, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return m, cover.astype(bool)
