"""facenet-pytorch's MTCNN (weights inside its wheel): face candidates of an RGB image."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

MIN_CONFIDENCE = 0.90  # MTCNN probability for a detection to count as a face


@lru_cache(maxsize=4)
def _mtcnn(device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=torch.device(device), post_process=False)


def candidates(rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face MTCNN proposes in uint8 RGB [H, W, 3]: boxes [N, 4] (x1, y1, x2, y2), probabilities [N],
    landmarks [N, 5, 2] (left eye, right eye, nose tip, left and right mouth corner, as seen), float64 pixels."""
    with torch.no_grad():
        boxes, probs, points = _mtcnn(device).detect(rgb, landmarks=True)
    if boxes is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    return (np.asarray(boxes, np.float64), np.asarray(probs, np.float64), np.asarray(points, np.float64))
