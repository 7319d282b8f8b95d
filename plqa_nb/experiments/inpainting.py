"""Inpainting low-PLQ areas (paper Sec. V-A, Figs. 3-4): does removing what the map blames raise Q̂?

The mask comes from the PLQ map (``plq_mask``: connected low-quality regions inside the face,
dilated) or from the user (``user_mask``: a mask image per photo); OpenCV inpaints it (Telea or
Navier-Stokes). Q̂ before and after is computed ``repeats`` times with different estimator seeds;
a change counts as up/down only beyond one std (the larger of the two), as in Fig. 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .. import degradations as dg
from ..backbones.base import crops_to_tensor
from ..errors import InputError
from ..images import load_image
from ..pipeline import Explainer, PreparedFace
from . import icao
from .common import FaceCrop, FaceLike, FaceResult, Panel, as_face_crop
from .feedback import feedback
from .regions import FaceFrame, region_masks, region_means

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
#: the columns of a row besides ``file`` (``plqa experiment inpainting`` adds status and timing columns)
COLUMNS = ["violation", "method", "quality_before", "quality_before_std", "quality_after", "quality_after_std", "masked_fraction",
           "change", "feedback"]


def plq_mask(plq: np.ndarray, landmarks: np.ndarray, level: float = 0.5, smooth: float = 0.08,
             min_area: float = 0.01, dilate: float = 3.0) -> np.ndarray:
    """Low-quality connected regions inside the face, as bool [S, S].

    The map is smoothed (Gaussian, ``smooth`` × inter-ocular distance), and pixels of the face oval
    below ``level`` × the face's median smoothed PLQ are kept when their connected region covers at
    least ``min_area`` of the face; the result is dilated by ``dilate`` px (112-px scale). The level is
    relative to the face's own median, so the mask does not depend on the scale of a backbone's PLQ.
    """
    s = plq.shape[0]
    frame = FaceFrame.from_landmarks(landmarks, s)
    face = region_masks(landmarks, s)["face"]
    smoothed = cv2.GaussianBlur(np.asarray(plq, np.float32), (0, 0), sigmaX=smooth * frame.d)
    low = (face & (smoothed < level * np.median(smoothed[face]))).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(low, connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area * face.sum())
    keep = keep[keep > 0]
    mask = np.isin(labels, keep).astype(np.uint8)
    r = dg.to_crop_px(dilate, s)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel).astype(bool)


def user_mask(path: str | Path, face: PreparedFace) -> np.ndarray:
    """A mask image (white = inpaint) for ``face``, as bool [S, S] in crop pixels: an image of the photo's
    size is warped with the face's alignment, one of the crop's size is taken as it is."""
    grey = load_image(path).mean(-1) > 127
    s = face.aligned.crop.shape[0]
    if grey.shape == (s, s):
        return grey
    if grey.shape != face.photo.shape[:2]:
        raise InputError(str(path), f"mask is {grey.shape[1]}×{grey.shape[0]}, expected the photo's "
                                    f"{face.photo.shape[1]}×{face.photo.shape[0]} or the crop's {s}×{s}")
    warped = cv2.warpAffine(grey.astype(np.uint8), face.aligned.matrix, (s, s), flags=cv2.INTER_NEAREST)
    return warped.astype(bool)


def inpaint(crop: np.ndarray, mask: np.ndarray, method: str = "telea", radius: float = 3.0) -> np.ndarray:
    """OpenCV inpainting of ``mask`` (bool [S, S]) in crop uint8 [S, S, 3]; ``radius`` on the 112-px scale."""
    if method not in METHODS:
        raise ValueError(f"inpainting method must be one of {list(METHODS)}, not {method!r}")
    r = dg.to_crop_px(radius, crop.shape[0])
    return cv2.inpaint(np.ascontiguousarray(crop), mask.astype(np.uint8), r, METHODS[method])


def change(before: float, before_std: float, after: float, after_std: float) -> str:
    """'up' / 'down' when Q̂ moved by more than the larger std, else 'within'."""
    band = max(before_std, after_std)
    return "up" if after - before > band else "down" if before - after > band else "within"


def run(explainer: Explainer, faces: Sequence[FaceLike], masks: Sequence[np.ndarray] | None = None,
        method: str = "telea", repeats: int = 10, seed: int | None = None) -> list[FaceResult]:
    """Inpainting experiment on a batch of faces.

    ``masks``: one bool [S, S] per face, or None to take ``plq_mask`` of each face's map. Q̂ is
    averaged over ``repeats`` estimator seeds seed, seed+1, ... (default seed: the explainer's); the
    std is the sample std (0 for one repeat). Per face: one row, panels before/after (Fig. 4) and the
    mask. Row columns: file and ``COLUMNS`` (violation empty; feedback on the image before inpainting).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    seed = explainer.seed if seed is None else seed
    faces = [as_face_crop(f) for f in faces]
    if not faces:
        return []
    before = [f.crop for f in faces]
    out_b = explainer.explain_tensor(crops_to_tensor(before, explainer.device), seed)
    plq_b = out_b["plq"].cpu().numpy()
    if masks is None:
        masks = [plq_mask(p, f.landmarks) for p, f in zip(plq_b, faces)]
    after = [inpaint(f.crop, m, method) for f, m in zip(faces, masks)]
    out_a = explainer.explain_tensor(crops_to_tensor(after, explainer.device), seed)
    plq_a = out_a["plq"].cpu().numpy()
    both = crops_to_tensor(before + after, explainer.device)  # every repeat in the same batch: only the seed differs
    q = np.stack([explainer.quality(both, seed + r)[0].cpu().numpy() for r in range(repeats)]).astype(float)  # [R, 2N]
    mean, std = q.mean(0), (q.std(0, ddof=1) if repeats > 1 else np.zeros(q.shape[1]))
    n = len(faces)
    results = []
    for i, f in enumerate(faces):
        qb, sb, qa, sa = mean[i], std[i], mean[n + i], std[n + i]
        row = {"file": f.name, "violation": "", "method": method, "quality_before": qb, "quality_before_std": sb,
               "quality_after": qa, "quality_after_std": sa, "masked_fraction": float(masks[i].mean()),
               "change": change(qb, sb, qa, sa),
               "feedback": feedback(region_means(plq_b[i], region_masks(f.landmarks, f.crop.shape[0])), qb)}
        panels = [Panel(before[i], plq_b[i], qb, "before"), Panel(after[i], plq_a[i], qa, "after")]
        results.append(FaceResult(f.name, [row], panels, np.asarray(masks[i], bool)))
    return results


MASK_SOURCES = ("plq", "occluder")


def run_occluded(explainer: Explainer, faces: Sequence[FaceLike], only: str | Sequence[str] = "occlusion",
                 mask_from: str = "plq", method: str = "telea", repeats: int = 10,
                 seed: int | None = None) -> list[FaceResult]:
    """Inpainting of synthetic ICAO violations (``icao.make_variants``, default: the occluders) of compliant
    faces: the occluded image is inpainted under the PLQ mask (``mask_from="plq"``) or under the exact occluder
    (``"occluder"``, an upper bound for the fill). One FaceResult per face, a row per variant (``violation``
    set), before/after panels of every variant in turn."""
    if mask_from not in MASK_SOURCES:
        raise ValueError(f"mask_from must be one of {MASK_SOURCES}, not {mask_from!r}")
    seed = explainer.seed if seed is None else seed
    results = []
    for face in map(as_face_crop, faces):
        variants = icao.make_variants(face, only, seed)
        if mask_from == "occluder" and any(v.occluder is None for v in variants):
            raise ValueError("mask_from='occluder' needs occlusion variants only")
        occluded = [FaceCrop(face.name, v.image, v.landmarks) for v in variants]
        masks = [v.occluder for v in variants] if mask_from == "occluder" else None
        parts = run(explainer, occluded, masks, method, repeats, seed)
        rows = [{**p.rows[0], "violation": v.name} for p, v in zip(parts, variants)]
        panels = [Panel(panel.image, panel.plq, panel.quality, f"{v.name} {panel.label}")
                  for p, v in zip(parts, variants) for panel in p.panels]
        results.append(FaceResult(face.name, rows, panels))
    return results


def summary(rows: Sequence[dict]) -> dict:
    """Shares of faces whose Q̂ went up / down beyond one std, and with any rise (after > before)."""
    ch = np.array([r["change"] for r in rows])
    rise = np.array([float(r["quality_after"]) > float(r["quality_before"]) for r in rows])
    return {"n": len(rows), "up": float(np.mean(ch == "up")), "down": float(np.mean(ch == "down")),
            "within": float(np.mean(ch == "within")), "any_rise": float(np.mean(rise))}


def summary_by_violation(rows: Sequence[dict]) -> list[dict]:
    """``summary`` per violation (rows of ``run_occluded``) and of all rows together ("all")."""
    names = [v for v in dict.fromkeys(str(r.get("violation", "")) for r in rows) if v]
    groups = [(v, [r for r in rows if r.get("violation") == v]) for v in names] if len(names) > 1 else []
    return [{"violation": v, **summary(sel)} for v, sel in groups + [("all", list(rows))]]
