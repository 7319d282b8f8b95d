"""Inpainting the area an explanation blames (paper Sec. V-A, Figs. 3-4): does removing it raise Q̂?

The mask comes from the explanation (``mask_from="plq"``, ``explanation_mask``: the part of the face the
counterfactual map, ``attribution.counterfactual``, blames: where the compliant mean face would raise the quality
most; where no window of it would, the region that stands out against compliant faces); or ``"paper"``, the paper's
rule, ``plq_mask``: connected low-PLQ regions of the saliency map) or from the user (``user_mask``: a mask image per
photo). ``FILLS`` fill it: OpenCV's Telea or Navier-Stokes inpainting, the mirrored other half of the face
(``mirror``: where it is itself clean), or the backbone's compliant mean face blended in with Poisson editing
(``mean-face``, ``cv2.seamlessClone``). Q̂ before and after is computed ``repeats`` times with different estimator
seeds; a change counts as up/down only beyond one std (the larger of the two), as in Fig. 3 (a deterministic
estimator has no spread: then any change counts).
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
from .common import FaceCrop, FaceLike, FaceResult, Panel, as_face_crop, counterfactual_maps, deviations_of, flagged
from .feedback import feedback
from .options import DEFAULT_FILL, DEFAULT_MASK, FILLS, MASK_SOURCES
from ..regions import FaceFrame, flag_region, region_masks, region_means

#: the columns of a row besides ``file`` (``plqa experiment inpainting`` adds status and timing columns)
COLUMNS = ["violation", "fill", "mask_source", "quality_before", "quality_before_std", "quality_after",
           "quality_after_std", "quality_raw_before", "quality_raw_after", "masked_fraction", "change",
           "flagged_region", "feedback"]


def defect_mask(defect: np.ndarray, landmarks: np.ndarray, share: float = 0.5, min_area: float = 0.01,
                dilate: float = 3.0) -> np.ndarray:
    """The part of the face a counterfactual defect map [S, S] blames, as bool [S, S]: face pixels where the
    compliant face would do better (defect > 0) by at least ``share`` × the face's highest defect, in connected
    regions of at least ``min_area`` of the face, dilated by ``dilate`` px (112-px scale). Empty when no window
    of the compliant face would raise the quality."""
    face = region_masks(landmarks, defect.shape[0])["face"]
    top = float(defect[face].max())
    if top <= 0:
        return np.zeros(defect.shape, bool)
    return _regions(face & (defect > share * top), face, min_area, dilate)


#: px (112-px scale) by which ``flag_mask`` widens the flagged region: the region masks hug the eyes, mouth or
#: cheek, an occluder reaches past them. Chosen on the development photos among 2 / 3 / 4 / 6 / 10 px, the one
#: whose worse network (sface, dlib-resnet) lowers the raw quality least often (``research/inpainting_mask_rules.py``;
#: docs/results/analyses.md).
FLAG_DILATE = 4.0


def flag_mask(deviation: np.ndarray, landmarks: np.ndarray, norm, dilate: float = FLAG_DILATE) -> np.ndarray:
    """The face region that stands out against compliant faces by a deviation map [S, S] (``regions.flag_region``
    against ``norm``, a ``deviation.FeatureNorm``), dilated by ``dilate`` px (112-px scale) inside the face, as
    bool [S, S]; empty when nothing stands out."""
    masks = region_masks(landmarks, deviation.shape[0])
    region, _ = flag_region(np.asarray(deviation, np.float64), masks, norm)
    if not region:
        return np.zeros(deviation.shape, bool)
    return _widen(masks[region], dilate) & masks["face"]


def explanation_mask(defect: np.ndarray, deviation: np.ndarray, landmarks: np.ndarray, norm,
                     dilate: float = FLAG_DILATE) -> np.ndarray:
    """What the explanation blames, bool [S, S]: the counterfactual's ``defect_mask``, or, where no window of the
    compliant face would raise the quality (a network that a blurred patch costs as much as an occluder, such as
    SFace, often has none), the flagged region (``flag_mask``, widened by ``dilate``). Empty when neither blames
    anything."""
    mask = defect_mask(defect, landmarks)
    return mask if mask.any() else flag_mask(deviation, landmarks, norm, dilate)


def plq_mask(plq: np.ndarray, landmarks: np.ndarray, level: float = 0.5, smooth: float = 0.08,
             min_area: float = 0.01, dilate: float = 3.0) -> np.ndarray:
    """The paper's rule: low-quality connected regions inside the face, as bool [S, S].

    The map is smoothed (Gaussian, ``smooth`` × inter-ocular distance), and pixels of the face oval
    below ``level`` × the face's median smoothed PLQ are kept when their connected region covers at
    least ``min_area`` of the face; the result is dilated by ``dilate`` px (112-px scale). The level is
    relative to the face's own median, so the mask does not depend on the scale of a backbone's PLQ.
    """
    s = plq.shape[0]
    frame = FaceFrame.from_landmarks(landmarks, s)
    face = region_masks(landmarks, s)["face"]
    smoothed = cv2.GaussianBlur(np.asarray(plq, np.float32), (0, 0), sigmaX=smooth * frame.d)
    return _regions(face & (smoothed < level * np.median(smoothed[face])), face, min_area, dilate)


def _regions(pixels: np.ndarray, face: np.ndarray, min_area: float, dilate: float) -> np.ndarray:
    """Connected regions of ``pixels`` covering at least ``min_area`` of ``face``, dilated (112-px scale)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(pixels.astype(np.uint8), connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area * face.sum())
    return _widen(np.isin(labels, keep[keep > 0]), dilate)


def _widen(mask: np.ndarray, px: float) -> np.ndarray:
    """bool [S, S] ``mask`` dilated by a disc of radius ``px`` on the 112-px scale."""
    r = dg.to_crop_px(px, mask.shape[0])
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


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


def fill(crop: np.ndarray, mask: np.ndarray, how: str = DEFAULT_FILL, landmarks: np.ndarray | None = None,
         mean_face: np.ndarray | None = None, radius: float = 3.0) -> np.ndarray:
    """``crop`` uint8 [S, S, 3] with ``mask`` (bool [S, S]) filled by ``how`` (one of ``FILLS``):

    * "telea", "ns": OpenCV inpainting from the mask's border (``radius`` on the 112-px scale);
    * "mirror": the face mirrored about its vertical axis (from the ``landmarks``), where the mirrored pixel is
      not masked itself; the rest by "mean-face";
    * "mean-face": the compliant ``mean_face`` (uint8 [S, S, 3], aligned like the crop) blended in by Poisson
      editing, so its colours follow the mask's border (``_poisson_blend``).
    """
    if how not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, not {how!r}")
    crop = np.ascontiguousarray(crop)
    if not mask.any():
        return crop.copy()
    if how in ("telea", "ns"):
        method = cv2.INPAINT_TELEA if how == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(crop, mask.astype(np.uint8), dg.to_crop_px(radius, crop.shape[0]), method)
    if mean_face is None:
        raise ValueError(f"the '{how}' fill needs the backbone's compliant mean face")
    if how == "mirror":
        if landmarks is None:
            raise ValueError("the 'mirror' fill needs the face's landmarks")
        frame = FaceFrame.from_landmarks(landmarks, crop.shape[0])
        c, ex = frame.origin, frame.ex  # reflection about the line through c along the face's vertical axis
        flip = np.hstack([np.eye(2) - 2 * np.outer(ex, ex), (2 * np.dot(c, ex) * ex)[:, None]])
        mirrored = cv2.warpAffine(crop, flip, crop.shape[1::-1], flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        clean = cv2.warpAffine((~mask).astype(np.uint8), flip, crop.shape[1::-1], flags=cv2.INTER_NEAREST).astype(bool)
        out = crop.copy()
        out[mask & clean] = mirrored[mask & clean]
        rest = mask & ~clean
        return fill(out, rest, "mean-face", landmarks, mean_face) if rest.any() else out
    return _poisson_blend(np.ascontiguousarray(mean_face), crop, mask)


#: px by which the mask handed to ``cv2.seamlessClone`` is widened: OpenCV erodes it by 3 px (three 3×3 erosions)
#: before solving and keeps the destination's gradients there, and its gradient stencil reaches one pixel further.
#: Unwidened, an occluder's rim stays in the fill and sets its level (dark glasses stay dark).
CLONE_MARGIN = 4


def _poisson_blend(source: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``source`` blended into ``crop`` under ``mask`` by ``cv2.seamlessClone`` (both uint8 [S, S, 3], aligned):
    solved on the mask widened by ``CLONE_MARGIN`` px, then only the masked pixels are taken. OpenCV leaves the
    image's 1-px frame as it is."""
    wide = cv2.dilate(mask.astype(np.uint8), np.ones((2 * CLONE_MARGIN + 1,) * 2, np.uint8))
    wide[[0, -1], :] = wide[:, [0, -1]] = 0
    ys, xs = np.nonzero(wide)
    centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))  # patch stays in place
    cloned = cv2.seamlessClone(source, crop, wide * 255, centre, cv2.NORMAL_CLONE)
    return np.where(mask[..., None], cloned, crop)


def change(before: float, before_std: float, after: float, after_std: float) -> str:
    """'up' / 'down' when Q̂ moved by more than the larger std, else 'within'."""
    band = max(before_std, after_std)
    return "up" if after - before > band else "down" if before - after > band else "within"


def run(explainer: Explainer, faces: Sequence[FaceLike], masks: Sequence[np.ndarray] | None = None,
        how: str = DEFAULT_FILL, repeats: int = 10, seed: int | None = None,
        mask_from: str = DEFAULT_MASK) -> list[FaceResult]:
    """Inpainting experiment on a batch of faces.

    ``masks``: one bool [S, S] per face (``mask_from`` then says where they came from, e.g. "user" or
    "occluder"), or None to take each face's ``explanation_mask`` (``mask_from="plq"``) or the paper's
    ``plq_mask`` (``"paper"``). ``how``: one of ``FILLS``. Q̂ is averaged over ``repeats``
    estimator seeds seed, seed+1, ... (default seed: the explainer's); the std is the sample std (0 for one
    repeat). Per face: one row, panels before/after (Fig. 4) and the mask. Row columns: file and ``COLUMNS``
    (violation empty; flagged_region and feedback of the image before inpainting).
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if masks is None and mask_from not in ("plq", "paper"):
        raise ValueError(f"mask_from must be 'plq' or 'paper' without masks, not {mask_from!r}")
    seed = explainer.seed if seed is None else seed
    faces = [as_face_crop(f) for f in faces]
    if not faces:
        return []
    before = [f.crop for f in faces]
    s = before[0].shape[0]
    out_b = explainer.explain_tensor(crops_to_tensor(before, explainer.device), seed)
    plq_b = out_b["plq"].cpu().numpy()
    deviations = deviations_of(out_b)
    norm = explainer.compliant_norm() if deviations is not None or how in ("mirror", "mean-face") else None
    if masks is None and mask_from == "plq":
        if deviations is None:
            raise ValueError("the explanation's mask needs the backbone's compliant-face norm: run plqa calibrate, "
                             "or take the paper's rule (mask_from='paper')")
        features = norm.features
        masks = [explanation_mask(c, d, f.landmarks, features)
                 for c, d, f in zip(counterfactual_maps(explainer, before), deviations, faces)]
    elif masks is None:
        masks = [plq_mask(p, f.landmarks) for p, f in zip(plq_b, faces)]
    mean_face = None if norm is None else norm.face(s).permute(1, 2, 0).round().byte().numpy()
    after = [fill(f.crop, m, how, f.landmarks, mean_face) for f, m in zip(faces, masks)]
    out_a = explainer.explain_tensor(crops_to_tensor(after, explainer.device), seed)
    plq_a = out_a["plq"].cpu().numpy()
    both = crops_to_tensor(before + after, explainer.device)  # every repeat in the same batch: only the seed differs
    scores = [explainer.quality(both, seed + r) for r in range(repeats)]
    q = np.stack([q_hat.cpu().numpy() for q_hat, _ in scores]).astype(float)  # [R, 2N]
    raw = np.stack([r.cpu().numpy() for _, r in scores]).astype(float).mean(0)  # [2N], the estimator's own Q
    mean, std = q.mean(0), (q.std(0, ddof=1) if repeats > 1 else np.zeros(q.shape[1]))
    n = len(faces)
    results = []
    for i, f in enumerate(faces):
        qb, sb, qa, sa = mean[i], std[i], mean[n + i], std[n + i]
        regions = region_masks(f.landmarks, s)
        flag = flagged(explainer, None if deviations is None else deviations[i], regions)
        row = {"file": f.name, "violation": "", "fill": how, "mask_source": mask_from, "quality_before": qb,
               "quality_before_std": sb, "quality_after": qa, "quality_after_std": sa,
               "quality_raw_before": float(raw[i]), "quality_raw_after": float(raw[n + i]),
               "masked_fraction": float(masks[i].mean()), "change": change(qb, sb, qa, sa),
               "flagged_region": flag[0] if flag else "",
               "feedback": feedback(region_means(plq_b[i], regions), qb, flagged=flag)}
        panels = [Panel(before[i], plq_b[i], qb, "before"), Panel(after[i], plq_a[i], qa, "after")]
        results.append(FaceResult(f.name, [row], panels, np.asarray(masks[i], bool)))
    return results


def run_occluded(explainer: Explainer, faces: Sequence[FaceLike], only: str | Sequence[str] = "occlusion",
                 mask_from: str = DEFAULT_MASK, how: str = DEFAULT_FILL, repeats: int = 10,
                 seed: int | None = None) -> list[FaceResult]:
    """Inpainting of synthetic ICAO violations (``icao.make_variants``, default: the occluders) of compliant
    faces: the occluded image is filled under the mask its explanation gives (``mask_from`` "plq" or "paper")
    or under the exact occluder (``"occluder"``: an upper bound for the fill). One FaceResult per face, a row per
    variant (``violation`` set), before/after panels of every variant in turn."""
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
        parts = run(explainer, occluded, masks, how, repeats, seed, mask_from)
        rows = [{**p.rows[0], "violation": v.name} for p, v in zip(parts, variants)]
        panels = [Panel(panel.image, panel.plq, panel.quality, f"{v.name} {panel.label}")
                  for p, v in zip(parts, variants) for panel in p.panels]
        results.append(FaceResult(face.name, rows, panels))
    return results


def summary(rows: Sequence[dict]) -> dict:
    """Shares of faces whose Q̂ went up / down beyond one std, with any rise (after > before), whose raw quality Q
    went up / down (raw_up, raw_down: Q̂ near 1 moves by float-sized steps, the raw Q does not), and with an empty
    mask (nothing to fill)."""
    ch = np.array([r["change"] for r in rows])
    rise = np.array([float(r["quality_after"]) > float(r["quality_before"]) for r in rows])
    raw = np.array([float(r["quality_raw_after"]) - float(r["quality_raw_before"]) for r in rows])
    return {"n": len(rows), "up": float(np.mean(ch == "up")), "down": float(np.mean(ch == "down")),
            "within": float(np.mean(ch == "within")), "any_rise": float(np.mean(rise)),
            "raw_up": float(np.mean(raw > 0)), "raw_down": float(np.mean(raw < 0)),
            "empty": float(np.mean([float(r["masked_fraction"]) == 0 for r in rows]))}


def summary_by_violation(rows: Sequence[dict]) -> list[dict]:
    """``summary`` per violation (rows of ``run_occluded``) and of all rows together ("all")."""
    names = [v for v in dict.fromkeys(str(r.get("violation", "")) for r in rows) if v]
    groups = [(v, [r for r in rows if r.get("violation") == v]) for v in names] if len(names) > 1 else []
    return [{"violation": v, **summary(sel)} for v, sel in groups + [("all", list(rows))]]
