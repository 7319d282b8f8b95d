"""facenet-pytorch's MTCNN (weights inside its wheel): face candidates of an RGB image, and its last two networks
alone (``refine``) for a face found by another detector."""
from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import torch

from .boxes import square

MIN_CONFIDENCE = 0.90  # MTCNN probability for a detection to count as a face
PIXEL_SCALE = 1 / 128  # MTCNN's input: (pixel - 127.5) / 128
R_NET_SIDE, O_NET_SIDE = 24, 48  # px: the square windows its second and third networks see


@lru_cache(maxsize=4)
def _mtcnn(device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=torch.device(device), post_process=False)


@lru_cache(maxsize=1)
def _refiners() -> tuple[torch.nn.Module, torch.nn.Module]:
    """MTCNN's R-Net and O-Net for ``refine``: copies in channels-last memory, where one window costs O-Net 0.6
    instead of 1.35 ms on one core (torch's max pooling is slow in the default layout); outputs equal to 1e-7."""
    nets = _mtcnn("cpu")
    return tuple(copy.deepcopy(net).to(memory_format=torch.channels_last) for net in (nets.rnet, nets.onet))


def candidates(rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every face MTCNN proposes in uint8 RGB [H, W, 3]: boxes [N, 4] (x1, y1, x2, y2), probabilities [N],
    landmarks [N, 5, 2] (left eye, right eye, nose tip, left and right mouth corner, as seen), float64 pixels."""
    with torch.no_grad():
        boxes, probs, points = _mtcnn(device).detect(rgb, landmarks=True)
    if boxes is None:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    return (np.asarray(boxes, np.float64), np.asarray(probs, np.float64), np.asarray(points, np.float64))


def _window(rgb: np.ndarray, box: np.ndarray, side: int) -> torch.Tensor:
    """What MTCNN's networks see of ``box`` [4]: its whole pixels (1-based corners as MTCNN counts them, cut at the
    image's edges), area-resampled to [1, 3, side, side] and scaled to about [-1, 1]."""
    h, w = rgb.shape[:2]
    x1, y1 = np.clip(np.trunc(box[:2]).astype(int), 1, (w, h))
    x2, y2 = np.clip(np.trunc(box[2:]).astype(int), (x1, y1), (w, h))
    pixels = torch.from_numpy(np.array(rgb[y1 - 1:y2, x1 - 1:x2])).permute(2, 0, 1)[None].float()
    window = (torch.nn.functional.interpolate(pixels, size=(side, side), mode="area") - 127.5) * PIXEL_SCALE
    return window.contiguous(memory_format=torch.channels_last)


def _regress(box: np.ndarray, offsets: torch.Tensor) -> np.ndarray:
    """``box`` [4] moved by a network's offsets [1, 4], in units of its width and height (MTCNN's inclusive size)."""
    size = np.tile(box[2:] - box[:2] + 1, 2)
    return box + offsets[0].numpy().astype(np.float64) * size


def refine(rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MTCNN's second and third stages on one face of uint8 RGB [H, W, 3] found by another detector, around
    ``box`` [4]: R-Net moves the box, O-Net places the five landmarks. Returns O-Net's box [4] and landmarks [5, 2]
    (the order of ``candidates``), float64 pixels. On the CPU: one window per network."""
    r_net, o_net = _refiners()
    box = square(box)
    with torch.no_grad():
        offsets, _ = r_net(_window(rgb, box, R_NET_SIDE))
        box = square(_regress(box, offsets))
        offsets, points, _ = o_net(_window(rgb, box, O_NET_SIDE))
    points = points[0].numpy().astype(np.float64).reshape(2, 5).T  # x0..x4, y0..y4 in units of the box
    landmarks = points * (box[2:] - box[:2] + 1) + box[:2] - 1
    return _regress(box, offsets), landmarks
