"""Static figures (matplotlib) for result files and the documentation."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .plq import PLQ_COLORMAP


def explanation_figure(result):
    """Crop | PLQ map | overlay on the photo (when kept), Q̂ in the title. Returns a Figure."""
    panels = [("aligned crop", result.crop, None), ("PLQ map", result.plq, PLQ_COLORMAP)]
    if result.photo is not None:
        panels.append(("on the photo", result.overlay(), None))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, img, cmap) in zip(axes, panels):
        im = ax.imshow(img, cmap=cmap, vmin=0, vmax=1) if cmap else ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.colorbar(im if panels[-1][2] else axes[1].images[0], ax=axes, fraction=0.025, label="pixel quality")
    name = str(result.source).split("/")[-1]
    fig.suptitle(f"{name}   Q̂ = {result.quality:.3f}   ({result.backbone}, {result.quality_method})", fontsize=10)
    return fig


def side_by_side_png(crop: np.ndarray, plq: np.ndarray, quality: float) -> np.ndarray:
    """Crop and coloured PLQ map side by side with Q̂ written on it, uint8 RGB [S, 2S, 3] (2S, 4S below 256 px)."""
    import cv2

    from .plq import colorize

    img = np.concatenate([crop, colorize(plq)], axis=1)
    if crop.shape[0] < 256:  # small crops are hard to read: upscale 2x, pixels kept sharp
        img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    img = img.copy()
    s = img.shape[0]
    scale = max(s / 300.0, 0.35)
    cv2.putText(img, f"Q={quality:.3f}", (4, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(img, f"Q={quality:.3f}", (4, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return img
