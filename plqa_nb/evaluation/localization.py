"""Does a map point at the defect? Localisation of known occluders by attribution maps.

Every method's map is turned into a per-pixel **defect score** (higher = more to blame for lost quality) by the
method's own ``AttributionMethod.defect`` (its ``defect_orientation``; see ``plqa_nb.attribution.base``).

Against an occluder's true mask, inside the face oval (``regions.region_masks``):

* ``mask_auc``: ROC AUC of the defect score, occluder pixels against the other face pixels (0.5 = chance);
* ``relevance_mass``: the share of the face's defect score (measured from the face's 5th percentile, so
  non-negative in any method's units) that falls inside the occluder; chance is the occluder's share of the face;
* ``flagged_region``: the face region with the highest mean rank-normalised defect (for the map that drives the
  feedback, ``experiments.icao`` puts the feedback's own flagged region here: against compliant faces, empty when
  nothing stands out), and ``region_hit`` whether it is one of the occluded (affected) regions.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..regions import FACE_REGIONS
from ..verification import roc_auc

COLUMNS = ["violation", "method", "orientation", "mask_auc", "relevance_mass", "occluder_share", "flagged_region",
           "region_hit", "drives_feedback"]


def orientation(method: str, kind: str | None = None) -> str:
    """How ``method``'s map becomes a defect score: ``kind`` when given, else the method's own
    ``AttributionMethod.defect_orientation``."""
    from ..attribution import get_method

    return kind if kind is not None else get_method(method).defect_orientation


def rank_normalised(score: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Ranks of ``score`` [S, S] among the pixels ``inside`` (bool [S, S]), scaled to (0, 1]; 0 outside."""
    out = np.zeros(score.shape, np.float64)
    vals = score[inside]
    out[inside] = rankdata(vals) / len(vals)
    return out


def mask_auc(defect: np.ndarray, occluder: np.ndarray, face: np.ndarray) -> float:
    """ROC AUC of the defect score: occluder pixels against the other pixels of the face (nan if either is empty)."""
    inside, outside = defect[occluder & face], defect[~occluder & face]
    return roc_auc(inside, outside) if inside.size and outside.size else float("nan")


def relevance_mass(defect: np.ndarray, occluder: np.ndarray, face: np.ndarray) -> float:
    """Share of the face's defect score inside the occluder, the score measured from the face's 5th percentile
    (so non-negative whatever the method's units, and one stray low pixel cannot set the zero); nan for a flat
    map."""
    r = np.clip(defect - np.quantile(defect[face], 0.05), 0, None)
    total = r[face].sum()
    return float(r[occluder & face].sum() / total) if total > 0 else float("nan")


def flagged_region(defect: np.ndarray, masks: dict[str, np.ndarray]) -> str:
    """The face region with the highest mean rank-normalised defect score."""
    r = rank_normalised(defect, masks["face"])
    means = {k: r[masks[k]].mean() for k in FACE_REGIONS if masks[k].any()}
    return max(means, key=means.get)


def localization_row(defect: np.ndarray, occluder: np.ndarray, masks: dict[str, np.ndarray],
                     affected: list[str]) -> dict:
    """mask_auc, relevance_mass, occluder_share (the chance level of the mass), flagged_region and region_hit of
    one defect map [S, S] against an occluder (bool [S, S]) and the regions it covers."""
    face = masks["face"]
    region = flagged_region(defect, masks)
    return {"mask_auc": mask_auc(defect, occluder, face), "relevance_mass": relevance_mass(defect, occluder, face),
            "occluder_share": float((occluder & face).sum() / face.sum()), "flagged_region": region,
            "region_hit": int(region in affected)}


def summary(rows: list[dict]) -> list[dict]:
    """Per method (in the rows' order): variants, mean mask_auc, relevance_mass and region_hit over all occluders,
    the mean mask_auc per occluder kind, and whether it drives the feedback."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        kinds = dict.fromkeys(r["violation"] for r in sel)
        out.append({"method": method, "orientation": sel[0]["orientation"], "variants": len(sel),
                    "mask_auc": float(np.nanmean([float(r["mask_auc"]) for r in sel])),
                    "relevance_mass": float(np.nanmean([float(r["relevance_mass"]) for r in sel])),
                    "chance_mass": float(np.mean([float(r["occluder_share"]) for r in sel])),
                    "region_hit": float(np.mean([int(r["region_hit"]) for r in sel])),
                    **{f"mask_auc_{k}": float(np.nanmean([float(r["mask_auc"]) for r in sel if r["violation"] == k]))
                       for k in kinds},
                    "drives_feedback": int(any(int(r["drives_feedback"]) for r in sel))})
    return out
