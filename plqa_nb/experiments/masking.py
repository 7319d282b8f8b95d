"""Random black squares on good faces (paper Sec. V-B, Eqs. 7-8, Figs. 5-6).

For every face and every size s (on the paper's 112-px scale, converted to the backbone's
crop), ``per_size`` black s×s squares are placed uniformly inside the inner 90 % of the crop.
Δ_Q̂ = Q̂_org − Q̂_mask (Eq. 7) and Δ_p = mean PLQ inside the square on the original minus on
the masked image (Eq. 8); positive values mean the square was noticed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import degradations as dg
from ..pipeline import Explainer, crops_to_tensor
from .common import FaceLike, FaceResult, Panel, as_face_crop, face_rng
from .feedback import feedback
from .regions import region_masks, region_means

SIZES = (10, 20, 30, 40, 50)


def run(explainer: Explainer, faces: Sequence[FaceLike], sizes: Sequence[float] = SIZES, per_size: int = 1,
        seed: int | None = None) -> list[FaceResult]:
    """Masking experiment; each face and all its squares are explained in one batch.

    ``seed`` (default: the explainer's) places the squares (per face, independent of the other faces)
    and seeds the estimator, identically for the original and the masked images. Per face: one row
    per square; panels: the original and the first square of each size (Fig. 6). Row columns: file,
    size, index, size_px, x, y (top-left, crop px), quality_org, quality_mask, delta_q, delta_p,
    feedback (on the masked image).
    """
    seed = explainer.seed if seed is None else seed
    results = []
    for face in map(as_face_crop, faces):
        s = face.crop.shape[0]
        rng = face_rng(seed, face.name, "masking")
        squares = []  # (size, index, size_px, x, y)
        for size in sizes:
            px = dg.to_crop_px(size, s)
            squares += [(size, k, px, *dg.random_square_position(rng, s, px)) for k in range(per_size)]
        images = [face.crop] + [dg.black_square(face.crop, x, y, px) for _, _, px, x, y in squares]
        out = explainer.explain_tensor(crops_to_tensor(images, explainer.device), seed)
        q, plq = out["quality"].cpu().numpy().astype(float), out["plq"].cpu().numpy()
        masks = region_masks(face.landmarks, s)
        rows, panels = [], [Panel(face.crop, plq[0], float(q[0]), "original")]
        for i, (size, k, px, x, y) in enumerate(squares, start=1):
            inside = (slice(y, y + px), slice(x, x + px))
            rows.append({"file": face.name, "size": size, "index": k, "size_px": px, "x": x, "y": y,
                         "quality_org": float(q[0]), "quality_mask": float(q[i]), "delta_q": float(q[0] - q[i]),
                         "delta_p": float(plq[0][inside].mean() - plq[i][inside].mean()),
                         "feedback": feedback(region_means(plq[i], masks), float(q[i]))})
            if k == 0:
                panels.append(Panel(images[i], plq[i], float(q[i]), f"s={size:g}"))
        results.append(FaceResult(face.name, rows, panels))
    return results


def summary(rows: Sequence[dict]) -> list[dict]:
    """Per size: faces, share with Δ_Q̂ > 0 and Δ_p > 0, median Δ_Q̂ and Δ_p."""
    out = []
    for size in sorted({float(r["size"]) for r in rows}):
        sel = [r for r in rows if float(r["size"]) == size]
        dq = np.array([float(r["delta_q"]) for r in sel])
        dp = np.array([float(r["delta_p"]) for r in sel])
        out.append({"size": size, "n": len(sel), "delta_q_pos": float(np.mean(dq > 0)),
                    "delta_p_pos": float(np.mean(dp > 0)), "delta_q_median": float(np.median(dq)),
                    "delta_p_median": float(np.median(dp))})
    return out
