"""YuNet finds the faces, MTCNN's last two networks place the largest: the ``yunet-mtcnn`` detector.

MTCNN's cost is its first network searching a pyramid of the whole photo (83–109 ms on one core for a 600-px
portrait); YuNet finds the same faces on the photo seen at ``yunet.COARSE_SIDE`` px for a fraction of that. MTCNN's
R-Net then moves YuNet's box and O-Net places the five landmarks, each on one window: together 7–8 ms, with
landmarks at least as close to hand-placed pupils as MTCNN's own, and Q̂ as close to MTCNN's as a one-pixel shift
of the photo leaves it (docs/results/verification.md#detectors).
Whether a face counts, and how many faces a photo has, is YuNet's answer where it finds a confident face. Where it
does not (a strongly blurred and compressed face can score 0.89 in YuNet and 1.00 in MTCNN), MTCNN searches the
whole photo and its answer is taken, so that a poor photo gets a low quality rather than "no face found".
"""
from __future__ import annotations

import numpy as np

from . import mtcnn, yunet
from .boxes import largest_confident

MIN_CONFIDENCE = yunet.MIN_CONFIDENCE  # what counts as a face, for YuNet's score and MTCNN's probability alike


def candidates(rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face YuNet proposes in uint8 RGB [H, W, 3] (on the CPU whatever ``device``), the largest confident
    one's box and landmarks placed by MTCNN's R-Net and O-Net; where YuNet has no confident face, MTCNN's own
    candidates (on ``device``). Boxes [N, 4] (x1, y1, x2, y2), scores [N], landmarks [N, 5, 2] (left eye, right
    eye, nose tip, left and right mouth corner, as seen), float64 pixels."""
    boxes, scores, points = yunet.proposals(rgb)
    i = largest_confident(boxes, scores, MIN_CONFIDENCE)
    if i is None:
        return mtcnn.candidates(rgb, device)
    boxes[i], points[i] = mtcnn.refine(rgb, boxes[i])
    return boxes, scores, points
