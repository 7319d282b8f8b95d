"""Box arithmetic the detectors share (boxes [N, 4] x1, y1, x2, y2 in pixels)."""
from __future__ import annotations

import numpy as np


def largest_confident(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> int | None:
    """Index of the largest box whose score reaches ``threshold``, or None when none does."""
    confident = scores >= threshold
    if not confident.any():
        return None
    return int(np.argmax(np.where(confident, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), -1.0)))


def square(box: np.ndarray) -> np.ndarray:
    """The square [4] of side max(width, height) centred on ``box`` [4]."""
    size = box[2:] - box[:2]
    corner = box[:2] + size / 2 - size.max() / 2
    return np.concatenate([corner, corner + size.max()])
