"""Reference images derived from crops: baselines for attribution and fillers for deletion/insertion.

All take crops [B, 3, S, S] in 0..255 and return the same shape, one reference per image
(never mixing images of a batch):

* "black": zeros;
* "blur": a Gaussian blur, σ = 5 px on the paper's 112-px scale (scaled by S/112);
* "mean": the image's mean colour (per channel) everywhere.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms.functional import gaussian_blur

from . import REFERENCES
BLUR_SIGMA_112 = 5.0


def blur(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur of crops [B, 3, S, S]; ``sigma`` in px (default: 5 px at 112 px, scaled to S)."""
    s = images.shape[-1]
    sigma = BLUR_SIGMA_112 * s / 112.0 if sigma is None else sigma
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * ((s - 1) // 2) + 1)  # odd, smaller than the crop
    return gaussian_blur(images, [k, k], [sigma, sigma])


def reference_images(images: torch.Tensor, kind: str) -> torch.Tensor:
    """The ``kind`` reference ("black", "blur", "mean") of each crop, [B, 3, S, S] in 0..255."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blur":
        return blur(images)
    if kind == "mean":
        return images.mean((2, 3), keepdim=True).expand_as(images).clone()
    raise ValueError(f"unknown reference '{kind}'; choose from {', '.join(REFERENCES)}")
