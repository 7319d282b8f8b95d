"""Random black squares on good faces (paper Sec. V-B, Eqs. 7-8, Figs. 5-6).

For every face and every size s (on the paper's 112-px scale, converted to the backbone's
crop), ``per_size`` black s×s squares are placed uniformly inside the inner 90 % of the crop.
Δ_Q̂ = Q̂_org − Q̂_mask (Eq. 7, column ``quality_lost``) and Δ_p = mean PLQ inside the square on the
original minus on the masked image (Eq. 8, ``plq_lost``): the paper's sign, positive = worse, so positive
values mean the square was noticed.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .. import degradations as dg
from ..backbones.base import crops_to_tensor
from ..pipeline import Explainer
from .common import FaceLike, FaceResult, Panel, as_face_crop, deviations_of, face_rng, flagged
from .feedback import feedback
from .options import MASKING_SIZES as SIZES
from ..regions import region_masks, region_means

#: the columns of a row (``plqa experiment masking`` adds file status and timing columns around them)
COLUMNS = ["size", "index", "size_px", "x", "y", "quality_org", "quality_mask", "quality_lost", "plq_lost",
           "flagged_region", "feedback"]


class Square(NamedTuple):
    """A black square: ``size`` on the 112-px scale (or as given), ``index`` among that size's squares,
    side ``size_px`` and top-left corner (x, y) in crop px."""

    size: float
    index: int
    size_px: int
    x: int
    y: int


def random_squares(face: FaceLike, sizes: Sequence[float] = SIZES, per_size: int = 1, seed: int = 0) -> list[Square]:
    """``per_size`` squares of each size (112-px scale) placed uniformly in the inner 90 % of the crop, drawn
    from the face's own generator (independent of the other faces)."""
    face = as_face_crop(face)
    s = face.crop.shape[0]
    rng = face_rng(seed, face.name, "masking")
    squares = []
    for size in sizes:
        px = dg.to_crop_px(size, s)
        squares += [Square(size, k, px, *dg.random_square_position(rng, s, px)) for k in range(per_size)]
    return squares


def measure(explainer: Explainer, face: FaceLike, squares: Sequence[Square], seed: int | None = None) -> FaceResult:
    """Eqs. 7-8 for one face and its squares, explained in one batch (the original first).

    Rows: one per square, with file and ``COLUMNS``; panels: the original and the first square of each size.
    """
    face = as_face_crop(face)
    seed = explainer.seed if seed is None else seed
    images = [face.crop] + [dg.black_square(face.crop, sq.x, sq.y, sq.size_px) for sq in squares]
    out = explainer.explain_tensor(crops_to_tensor(images, explainer.device), seed)
    q, plq = out["quality"].cpu().numpy().astype(float), out["plq"].cpu().numpy()
    masks = region_masks(face.landmarks, face.crop.shape[0])
    defects = deviations_of(out)
    rows, panels = [], [Panel(face.crop, plq[0], float(q[0]), "original")]
    for i, sq in enumerate(squares, start=1):
        inside = (slice(sq.y, sq.y + sq.size_px), slice(sq.x, sq.x + sq.size_px))
        flag = flagged(explainer, None if defects is None else defects[i], masks)
        rows.append({"file": face.name, **sq._asdict(), "quality_org": float(q[0]), "quality_mask": float(q[i]),
                     "quality_lost": float(q[0] - q[i]),
                     "plq_lost": float(plq[0][inside].mean() - plq[i][inside].mean()),
                     "flagged_region": flag[0] if flag else "",
                     "feedback": feedback(region_means(plq[i], masks), float(q[i]), flagged=flag)})
        if sq.index == 0:
            panels.append(Panel(images[i], plq[i], float(q[i]), f"s={sq.size:g}"))
    return FaceResult(face.name, rows, panels)


def run(explainer: Explainer, faces: Sequence[FaceLike], sizes: Sequence[float] = SIZES, per_size: int = 1,
        seed: int | None = None) -> list[FaceResult]:
    """Masking experiment: ``random_squares`` on each face, then ``measure`` (each face in one batch).

    ``seed`` (default: the explainer's) places the squares and seeds the estimator, identically for the
    original and the masked images. Row columns: file and ``COLUMNS`` (feedback on the masked image).
    """
    seed = explainer.seed if seed is None else seed
    return [measure(explainer, face, random_squares(face, sizes, per_size, seed), seed) for face in faces]


def summary(rows: Sequence[dict]) -> list[dict]:
    """Per size: faces, share with Δ_Q̂ > 0 and Δ_p > 0, median Δ_Q̂ and Δ_p."""
    out = []
    for size in sorted({float(r["size"]) for r in rows}):
        sel = [r for r in rows if float(r["size"]) == size]
        dq = np.array([float(r["quality_lost"]) for r in sel])
        dp = np.array([float(r["plq_lost"]) for r in sel])
        out.append({"size": size, "n": len(sel), "quality_lost_pos": float(np.mean(dq > 0)),
                    "plq_lost_pos": float(np.mean(dp > 0)), "quality_lost_median": float(np.median(dq)),
                    "plq_lost_median": float(np.median(dp))})
    return out
