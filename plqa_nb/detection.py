"""Stage 1: face detection and five landmarks with facenet-pytorch's MTCNN.

MTCNN's weights ship inside the facenet-pytorch wheel, so detection works offline.
Landmark order: left eye, right eye, nose tip, left and right mouth corner (left/right
as seen in the image), in pixels of the original image.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .errors import NoFaceError

DETECTION_MAX_SIDE = 1600  # px: larger photos are downscaled for detection only
MIN_CONFIDENCE = 0.90  # MTCNN probability for a detection to count as a face


@dataclass(frozen=True)
class Detection:
    """The face chosen for analysis (the largest) and how many faces were found.

    box: [4] x1, y1, x2, y2 in original pixels; landmarks: [5, 2] in original pixels.
    """

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float
    faces_found: int


@lru_cache(maxsize=4)
def _mtcnn(device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=torch.device(device), post_process=False)


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb, 1.0
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, scale


def detect_faces(rgb: np.ndarray, source: str = "<image>", device: str = "cpu") -> Detection:
    """Detect faces in a uint8 RGB image [H, W, 3]; return the largest one.

    Raises NoFaceError (naming ``source``) when no face reaches MIN_CONFIDENCE.
    """
    small, scale = _downscale(rgb, DETECTION_MAX_SIDE)
    with torch.no_grad():
        boxes, probs, points = _mtcnn(device).detect(small, landmarks=True)
    if boxes is None:
        raise NoFaceError(source, "no face found")
    keep = np.asarray(probs, dtype=np.float64) >= MIN_CONFIDENCE
    if not keep.any():
        raise NoFaceError(source, f"no face found (best detector confidence {float(np.max(probs)):.2f} "
                                  f"< {MIN_CONFIDENCE})")
    boxes, probs, points = boxes[keep] / scale, probs[keep], points[keep] / scale
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    i = int(np.argmax(areas))
    return Detection(box=boxes[i].astype(np.float64), landmarks=points[i].astype(np.float64),
                     confidence=float(probs[i]), faces_found=int(keep.sum()))
