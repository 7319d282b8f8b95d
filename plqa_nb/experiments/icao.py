"""ICAO-style non-compliance from a compliant photo, and the PLQ region table of every variant.

``make_variants`` turns one aligned crop into synthetic violations placed with its landmarks:

* occlusion: sunglasses (eyes), a medical mask (nose and mouth), a cap (forehead), a hand (one cheek);
* lighting: one-sided light, over- and under-exposure;
* sharpness: blur, noise, JPEG, pixelation;
* geometry: roll;
* background: clutter behind the head.

``run`` explains the compliant crop and all its variants in one batch and returns, per variant,
Q̂, quality_lost = Q̂_ref − Q̂ (Δ_Q̂ with Eq. 7's sign: positive means worse), quality_raw_lost (the same of the
estimator's raw Q), the mean PLQ per face region, the worst face region (lowest mean PLQ), the most degraded region
against the compliant photo (``regions.degraded_region``) and a sentence of feedback. ``run_as_is`` gives the same table for real
(non-synthetic) photos, optionally against a compliant reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from .. import degradations as dg
from ..attribution import defect_scores
from ..backbones.base import crops_to_tensor
from ..pipeline import Explainer
from ..regions import (REGIONS, FaceFrame, covered_regions, degraded_region, region_masks, region_means,
                      saliency_shares, worst_region)
from .common import FaceCrop, FaceLike, FaceResult, Panel, as_face_crop, deviations_of, face_rng, flagged
from .feedback import feedback
from .options import DRIVER, ICAO_CATEGORIES as CATEGORIES, ICAO_VIOLATIONS

#: the columns of a row besides ``file`` (``plqa experiment icao`` adds status and timing columns around them)
COLUMNS = (["violation", "category", "affected_region", "quality", "quality_ref", "quality_lost", "quality_raw",
            "quality_raw_lost", "worst_region", "degraded_region", "degraded_ratio", "flagged_region", "flag_score"] + [f"plq_{r}" for r in REGIONS + ("face",)] + ["feedback"])


@dataclass
class Variant:
    """One synthetic violation: image uint8 [S, S, 3], landmarks [5, 2] (crop px), occluder bool [S, S] or None."""

    name: str
    category: str
    image: np.ndarray = field(repr=False)
    landmarks: np.ndarray = field(repr=False)
    occluder: np.ndarray | None = field(default=None, repr=False)


# -- occluders, laid out in the face frame (units of the inter-ocular distance d) ---------------------------
def _landmarks_uv(frame: FaceFrame, landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    uv = frame.to_uv(landmarks)
    return uv, max(float(uv[2, 1]), 0.2), float((uv[3, 1] + uv[4, 1]) / 2)


def _side(rng: np.random.Generator) -> float:
    """Left or right (−1 or +1), one draw of ``rng``."""
    return 1.0 if rng.random() < 0.5 else -1.0


def _sunglasses(crop, landmarks, frame, rng):
    uv, _, _ = _landmarks_uv(frame, landmarks)
    lenses = frame.ellipse(*uv[0], 0.36, 0.27) | frame.ellipse(*uv[1], 0.36, 0.27)
    bridge = frame.polygon(np.array([[uv[0, 0] + 0.3, -0.08], [uv[1, 0] - 0.3, -0.08],
                                     [uv[1, 0] - 0.3, -0.02], [uv[0, 0] + 0.3, -0.02]]))
    temples = frame.polygon(np.array([[-1.0, -0.12], [1.0, -0.12], [1.0, -0.05], [-1.0, -0.05]]))
    occluder = lenses | bridge | temples
    return dg.paint(crop, dg.soft_alpha(occluder), (22, 22, 26), rng, texture=4.0), occluder


def _face_mask(crop, landmarks, frame, rng):
    _, nose_v, mouth_v = _landmarks_uv(frame, landmarks)
    top, chin = 0.45 * nose_v, mouth_v + 0.62
    outline = np.array([[-0.95, top + 0.12], [-0.4, top], [0.0, top - 0.05], [0.4, top], [0.95, top + 0.12],
                        [0.88, mouth_v + 0.3], [0.45, chin - 0.04], [0.0, chin], [-0.45, chin - 0.04],
                        [-0.88, mouth_v + 0.3]])
    occluder = frame.polygon(outline)
    # pleats: three slightly darker bands across the mask
    pleats = np.zeros_like(occluder)
    for v in np.linspace(top + 0.25, chin - 0.25, 3):
        pleats |= frame.polygon(np.array([[-0.9, v], [0.9, v], [0.9, v + 0.04], [-0.9, v + 0.04]]))
    colour = np.where((pleats & occluder)[..., None], np.array([120, 160, 185]), np.array([150, 192, 218]))
    return dg.paint(crop, dg.soft_alpha(occluder), colour, rng, texture=3.0), occluder


def _cap(crop, landmarks, frame, rng):
    crown = frame.ellipse(0.0, -0.92, 1.2, 0.64)
    brim = frame.ellipse(0.0, -0.3, 0.95, 0.1)
    occluder = crown | brim
    return dg.paint(crop, dg.soft_alpha(occluder), (150, 32, 42), rng, texture=5.0), occluder


def _hand(crop, landmarks, frame, rng):
    _, nose_v, mouth_v = _landmarks_uv(frame, landmarks)
    side = _side(rng)
    cv = (nose_v + mouth_v) / 2 + 0.05
    occluder = frame.ellipse(side * 0.64, cv, 0.33, 0.45)
    skin = np.median(crop[frame.ellipse(0.0, 0.3 * nose_v, 0.1, 0.2 * nose_v)], axis=0)  # skin tone of the nose bridge
    gaps = np.zeros_like(occluder)
    for dv in (-0.2, 0.0, 0.2):  # fingers lying across the cheek
        gaps |= frame.polygon(np.array([[side * 0.3, cv + dv], [side * 1.0, cv + dv],
                                        [side * 1.0, cv + dv + 0.03], [side * 0.3, cv + dv + 0.03]]))
    colour = np.where((gaps & occluder)[..., None], 0.7 * skin, 0.92 * skin)
    return dg.paint(crop, dg.soft_alpha(occluder), colour, rng, texture=6.0), occluder


def _backdrop(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """bool [S, S]: background pixels close in colour to the crop's border (the backdrop, not hair or neck)."""
    s = crop.shape[0]
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]]).astype(np.float32)
    dist = np.linalg.norm(crop.astype(np.float32) - np.median(border, axis=0), axis=-1)
    face = FaceFrame.from_landmarks(landmarks, s).ellipse(0.0, 0.3, 1.1, 1.4)  # the face oval, 10 % larger
    backdrop = (~face & (dist < 40)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    return cv2.morphologyEx(backdrop, cv2.MORPH_OPEN, kernel).astype(bool)  # no specks in hair or skin


# -- the registry: name → (category, function(crop, landmarks, frame, rng) → (image, occluder|None, landmarks))
def _occlusion(fn):
    def make(crop, landmarks, frame, rng):
        image, occluder = fn(crop, landmarks, frame, rng)
        return image, occluder, landmarks
    return make


def _pixels(fn):
    def make(crop, landmarks, frame, rng):
        return fn(crop, rng), None, landmarks
    return make


def _roll(crop, landmarks, frame, rng):
    image, pts = dg.rotate(crop, landmarks, 20.0 * _side(rng), tuple(frame.origin))
    return image, None, pts


def _clutter(crop, landmarks, frame, rng):
    return dg.clutter(crop, _backdrop(crop, landmarks), rng), None, landmarks


# severities: lengths on the paper's 112-px scale (converted with to_crop_px), grey levels, stops, degrees
_DRAW: dict[str, Callable] = {
    "sunglasses": _occlusion(_sunglasses),
    "face_mask": _occlusion(_face_mask),
    "cap": _occlusion(_cap),
    "hand_on_cheek": _occlusion(_hand),
    "side_light": _pixels(lambda c, rng: dg.directional_light(c, (_side(rng), 0.2), 0.7)),
    "overexposure": _pixels(lambda c, rng: dg.exposure(c, 1.8)),
    "underexposure": _pixels(lambda c, rng: dg.exposure(c, -2.5)),
    "blur": _pixels(lambda c, rng: dg.gaussian_blur(c, dg.to_crop_px(2.5, c.shape[0]))),
    "noise": _pixels(lambda c, rng: dg.gaussian_noise(c, 25.0, rng)),
    "jpeg": _pixels(lambda c, rng: dg.jpeg(c, 8)),
    "pixelation": _pixels(lambda c, rng: dg.pixelate(c, dg.to_crop_px(6, c.shape[0]))),
    "roll": _roll,
    "background_clutter": _clutter,
}
#: name → (category, how it is drawn), in ``options.ICAO_VIOLATIONS``'s order
VIOLATIONS: dict[str, tuple[str, Callable]] = {name: (category, _DRAW[name])
                                               for name, category in ICAO_VIOLATIONS.items()}


def select_violations(only: str | Sequence[str] | None = None) -> list[str]:
    """Violation names, all or those whose name or category is in ``only``; ValueError for an unknown name."""
    if only is None:
        return list(VIOLATIONS)
    wanted = [only] if isinstance(only, str) else list(only)
    unknown = [w for w in wanted if w not in VIOLATIONS and w not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown violation or category {unknown}; choose from {list(CATEGORIES)} or "
                         f"{list(VIOLATIONS)}")
    return [n for n, (cat, _) in VIOLATIONS.items() if n in wanted or cat in wanted]


def make_variants(face: FaceLike, only: str | Sequence[str] | None = None, seed: int = 0) -> list[Variant]:
    """The synthetic violations of one compliant face (crop uint8 [S, S, 3], landmarks in crop px)."""
    face = as_face_crop(face)
    frame = FaceFrame.from_landmarks(face.landmarks, face.crop.shape[0])
    out = []
    for name in select_violations(only):
        category, make = VIOLATIONS[name]
        rng = face_rng(seed, face.name, name)
        image, occluder, landmarks = make(face.crop, face.landmarks, frame, rng)
        out.append(Variant(name, category, image, np.asarray(landmarks, np.float64), occluder))
    return out


# -- the experiment -------------------------------------------------------------------------------------------


def _region_row(plq: np.ndarray, masks: dict[str, np.ndarray], quality: float,
                degraded: tuple[str, float] | None, flag: tuple[str, float] | None) -> dict:
    means = region_means(plq, masks)
    row = {f"plq_{k}": means[k] for k in REGIONS + ("face",)}
    row["worst_region"] = worst_region(means)
    row["degraded_region"], row["degraded_ratio"] = degraded if degraded else ("", "")
    row["flagged_region"], row["flag_score"] = flag if flag else ("", "")
    row["feedback"] = feedback(means, quality, degraded, flag)
    return row


def measure(explainer: Explainer, entries: list[dict], reference: FaceCrop | None, seed: int | None = None,
            reference_row: bool = True, methods: Sequence[str] = ()) -> FaceResult:
    """Explain the reference (if any) and the entries (dicts: file, image, landmarks, violation, category,
    affected, occluder) in one batch; rows and panels in that order, the reference's only with
    ``reference_row``. flagged_region comes from the deviation map (``DRIVER``) against the backbone's
    compliant-face norm. With ``methods``, every entry with an occluder also gets a localisation row per method
    (``evaluation.localization``), the driving map always among them."""
    from ..evaluation import localization

    images = ([reference.crop] if reference is not None else []) + [e["image"] for e in entries]
    x = crops_to_tensor(images, explainer.device)
    out = explainer.explain_tensor(x, seed)
    q = out["quality"].cpu().numpy().astype(float)
    raw = out["quality_raw"].cpu().numpy().astype(float)
    plq, sal = out["plq"].cpu().numpy(), out["saliency"].cpu().numpy()
    defects = deviations_of(out)
    s = images[0].shape[0]
    if reference is not None:
        entries = [{"file": reference.name, "image": reference.crop, "landmarks": reference.landmarks,
                    "violation": "reference", "category": "", "affected": "", "occluder": None}] + entries
        shares_ref = saliency_shares(sal[0], region_masks(reference.landmarks, s))
    rows, panels, loc = [], [], []
    occluded = [i for i, e in enumerate(entries) if e.get("occluder") is not None]
    extra = [m for m in dict.fromkeys([DRIVER, *methods]) if m != DRIVER] if methods else []
    attributions = {m: explainer.attribution_method(m).attribute(explainer.model, x[occluded],
                                                                 out["weights"][occluded], seed=seed)
                    for m in extra if occluded}
    for i, e in enumerate(entries):
        masks = region_masks(e["landmarks"], s)
        with_ref = reference is not None and i > 0
        degraded = degraded_region(saliency_shares(sal[i], masks), shares_ref) if with_ref else None
        flag = flagged(explainer, None if defects is None else defects[i], masks)
        rows.append({"file": e["file"], "violation": e["violation"], "category": e["category"],
                     "affected_region": e["affected"], "quality": float(q[i]),
                     "quality_ref": float(q[0]) if reference is not None else "",
                     "quality_lost": float(q[0] - q[i]) if reference is not None else "",
                     "quality_raw": float(raw[i]),
                     "quality_raw_lost": float(raw[0] - raw[i]) if reference is not None else "",
                     **_region_row(plq[i], masks, float(q[i]), degraded, flag)})
        panels.append(Panel(e["image"], plq[i], float(q[i]), e["violation"]))
        if methods and i in occluded:
            affected = e["affected"].split("+")
            maps = {DRIVER: defects[i] if defects is not None else None}
            maps.update({m: defect_scores(attributions[m][occluded.index(i)][None],
                                                       localization.orientation(m))[0] for m in extra})
            for m, d in maps.items():
                if d is None:
                    continue
                row = localization.localization_row(d, e["occluder"], masks, affected)
                if m == DRIVER:  # the region the feedback names, as icao.csv has it
                    row.update(flagged_region=flag[0], region_hit=int(flag[0] in affected))
                loc.append({"file": e["file"], "violation": e["violation"], "method": m,
                            "orientation": localization.orientation(m), **row, "drives_feedback": int(m == DRIVER)})
    if reference is not None and not reference_row:
        rows, panels = rows[1:], panels[1:]
    return FaceResult(entries[-1]["file"], rows, panels, localization=loc)


def run(explainer: Explainer, faces: Sequence[FaceLike], only: str | Sequence[str] | None = None,
        seed: int | None = None, methods: Sequence[str] = ()) -> list[FaceResult]:
    """ICAO experiment on compliant faces: each face and its variants are explained in one batch.

    ``seed`` (default: the explainer's) draws the variants' random choices and the estimator's noise.
    Per face: one row per variant, the reference first; panels: each with its map (Fig. 7). Row columns:
    file, violation, category, affected_region ('+'-joined face regions at least 40 % covered, occlusions
    only), quality, quality_ref, quality_lost, worst_region (lowest mean PLQ), degraded_region and
    degraded_ratio (``regions.degraded_region`` against the reference), flagged_region and flag_score
    (``regions.flag_region``: against compliant faces, "" when nothing stands out), plq_<region>, plq_face,
    feedback. With ``methods``, each occlusion also gets the localisation rows of those methods
    (``FaceResult.localization``).
    """
    seed = explainer.seed if seed is None else seed
    results = []
    for face in map(as_face_crop, faces):
        entries = [variant_entry(face, v) for v in make_variants(face, only, seed)]
        results.append(measure(explainer, entries, face, seed, reference_row=True, methods=methods))
    return results


def variant_entry(face: FaceCrop, variant: Variant) -> dict:
    """The ``measure`` entry of one variant of ``face``: affected_region are the face regions (of the compliant
    face) that the occluder covers at least 40 % ('+'-joined; empty for non-occlusions)."""
    ref_masks = region_masks(face.landmarks, face.crop.shape[0])
    affected = covered_regions(variant.occluder, ref_masks) if variant.occluder is not None else []
    return {"file": face.name, "image": variant.image, "landmarks": variant.landmarks, "violation": variant.name,
            "category": variant.category, "affected": "+".join(affected), "occluder": variant.occluder}


def run_as_is(explainer: Explainer, faces: Sequence[FaceLike], reference: FaceLike | None = None,
              seed: int | None = None) -> list[FaceResult]:
    """The region table of real photos as they are (violation 'as-is'), in one batch; with a compliant
    ``reference`` (e.g. the same subject) quality_ref, quality_lost and degraded_region are filled in."""
    faces = [as_face_crop(f) for f in faces]
    entries = [{"file": f.name, "image": f.crop, "landmarks": f.landmarks, "violation": "as-is", "category": "",
                "affected": "", "occluder": None} for f in faces]
    ref = as_face_crop(reference) if reference is not None else None
    res = measure(explainer, entries, ref, seed, reference_row=False)
    return [FaceResult(f.name, [row], [panel]) for f, row, panel in zip(faces, res.rows, res.panels)]


def summary(rows: Sequence[dict]) -> list[dict]:
    """Per violation (and all occlusions together): faces, share with quality lost (> 0; and with the estimator's raw
    Q lost, which Q̂ near 1 can hide below the CSV's rounding), its median, the shares
    whose worst_region / degraded_region / flagged_region is among affected_region (occlusions; NaN otherwise),
    and the share with nothing flagged; the compliant references first (their flagged_empty share)."""
    refs = [r for r in rows if r["violation"] == "reference"]
    rows = [r for r in rows if r["violation"] != "reference"]
    groups = {name: [r for r in rows if r["violation"] == name] for name in dict.fromkeys(r["violation"] for r in rows)}
    groups["all occlusions"] = [r for r in rows if r["category"] == "occlusion"]
    out = [{"violation": "reference", "n": len(refs), "flagged_empty": float(np.mean([r["flagged_region"] == ""
                                                                                       for r in refs]))}] if refs else []
    for name, sel in groups.items():
        if not sel:
            continue
        dq = np.array([float(r["quality_lost"]) if r["quality_lost"] != "" else np.nan for r in sel])
        draw = np.array([float(r["quality_raw_lost"]) if r.get("quality_raw_lost", "") != "" else np.nan
                         for r in sel])
        occ = [r for r in sel if r["category"] == "occlusion"]
        hits = {c: float(np.mean([r[c] in str(r["affected_region"]).split("+") for r in occ])) if occ else float("nan")
                for c in ("worst_region", "degraded_region", "flagged_region")}
        pos = float(np.mean(dq[~np.isnan(dq)] > 0)) if not np.isnan(dq).all() else float("nan")
        raw_pos = float(np.mean(draw[~np.isnan(draw)] > 0)) if not np.isnan(draw).all() else float("nan")
        out.append({"violation": name, "n": len(sel), "quality_lost_pos": pos, "raw_lost_pos": raw_pos,
                    "quality_lost_median": float(np.median(dq)), "worst_is_affected": hits["worst_region"],
                    "degraded_is_affected": hits["degraded_region"], "flagged_is_affected": hits["flagged_region"],
                    "flagged_empty": float(np.mean([r["flagged_region"] == "" for r in sel]))})
    return out
