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


OUTLINE_RGB = (0, 160, 255)  # the flagged part's outline: a light blue, seen on skin, dark glasses and every map colour


def side_by_side_png(crop: np.ndarray, plq: np.ndarray, quality: float, outline: np.ndarray | None = None) -> np.ndarray:
    """Crop and coloured PLQ map side by side with Q̂ written on it, uint8 RGB [S, 2S, 3] (2S, 4S below 256 px).
    ``outline`` (bool [S, S], e.g. ``regions.flag_part``'s part): drawn in ``OUTLINE_RGB`` on both panels."""
    import cv2

    from .plq import colorize

    scale = 2 if crop.shape[0] < 256 else 1  # small crops are hard to read: upscale 2x, pixels kept sharp
    panels = [crop, colorize(plq)]
    if scale > 1:
        panels = [cv2.resize(p, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for p in panels]
    if outline is not None and outline.any():
        mask = cv2.resize(outline.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        panels = [cv2.drawContours(np.ascontiguousarray(p), contours, -1, OUTLINE_RGB, 2) for p in panels]
    img = np.ascontiguousarray(np.concatenate(panels, axis=1))
    font = max(img.shape[0] / 300.0, 0.35)
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(img, f"Q={quality:.3f}", (4, int(18 * font / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, font, colour, width,
                    cv2.LINE_AA)
    return img
