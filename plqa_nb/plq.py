"""Stage 6: from input gradients to pixel-level quality (Eqs. 5-6), colours and overlays.

Ŝ = mean over colour channels of |∂M_Q/∂I| (gradients w.r.t. 0-255 pixels);
P = v(Ŝ) = 1 - 1 / (1 + 10**gamma · Ŝ²), in [0, 1], no per-image normalisation so maps
compare across images. Colours: red (0, low) → yellow → green (1, high) on a fixed range.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap

PLQ_COLORMAP = LinearSegmentedColormap.from_list("plq", [(0.84, 0.1, 0.1), (0.98, 0.85, 0.1), (0.1, 0.65, 0.2)])
PLQ_COLORSCALE = [[0.0, "rgb(214,26,26)"], [0.5, "rgb(250,217,26)"], [1.0, "rgb(26,166,51)"]]  # plotly


def merge_channels(attribution: torch.Tensor) -> torch.Tensor:
    """Eq. 5: [B, 3, H, W] → [B, H, W], mean of absolute values over channels."""
    return attribution.abs().mean(1)


def plq_from_saliency(saliency: torch.Tensor | np.ndarray, gamma: float):
    """Eq. 6: v(Ŝ) in [0, 1], monotone in Ŝ ≥ 0; works on tensors and arrays alike."""
    s2 = saliency ** 2
    return 1.0 - 1.0 / (1.0 + (10.0 ** gamma) * s2)


def colorize(plq: np.ndarray) -> np.ndarray:
    """PLQ map [H, W] in [0, 1] → uint8 RGB [H, W, 3] with the fixed red-yellow-green scale."""
    rgba = PLQ_COLORMAP(np.clip(plq, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay_on_photo(photo: np.ndarray, plq: np.ndarray, matrix: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend the coloured PLQ map (crop coordinates) onto the original photo [H, W, 3] (uint8)."""
    from .alignment import warp_to_image

    plq_img, cover = warp_to_image(plq, matrix, photo.shape)
    colours = colorize(plq_img).astype(np.float32)
    out = photo.astype(np.float32)
    out[cover] = (1 - alpha) * out[cover] + alpha * colours[cover]
    return out.round().astype(np.uint8)
