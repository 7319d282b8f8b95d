"""Image degradations on aligned crops (uint8 [S, S, 3]), shared by analyses and calibration checks.

Sizes given on the paper's 112-px scale are converted with ``to_crop_px``.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_crop_px(size_112: float, crop_size: int) -> int:
    """A length on the paper's 112-px crop scale → pixels of a crop of side ``crop_size``."""
    return max(1, int(round(size_112 * crop_size / 112.0)))


def black_square(crop: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """Copy of ``crop`` with a black size×size square whose top-left corner is (x, y)."""
    out = crop.copy()
    out[y:y + size, x:x + size] = 0
    return out


def random_square_position(rng: np.random.Generator, crop_size: int, size: int, inner: float = 0.9) -> tuple[int, int]:
    """Top-left (x, y) of a size×size square placed uniformly inside the central ``inner`` part of the crop."""
    margin = int(round(crop_size * (1 - inner) / 2))
    hi = max(margin, crop_size - margin - size)
    return int(rng.integers(margin, hi + 1)), int(rng.integers(margin, hi + 1))


def gaussian_blur(crop: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` in pixels."""
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma)


def gaussian_noise(crop: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of ``std`` grey levels (0..255), clipped."""
    return np.clip(crop + rng.normal(0, std, crop.shape), 0, 255).astype(np.uint8)


def jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    """JPEG compression round trip at ``quality`` (1..100)."""
    ok, enc = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].copy()


def pixelate(crop: np.ndarray, block: int) -> np.ndarray:
    """Mosaic with ``block``-pixel cells."""
    s = crop.shape[0]
    small = cv2.resize(crop, (max(1, s // block), max(1, s // block)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (crop.shape[1], s), interpolation=cv2.INTER_NEAREST)
