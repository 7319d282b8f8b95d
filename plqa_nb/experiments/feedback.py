"""Enrolment feedback in words: the one region to change first, then the detail behind it, with numbers."""
from __future__ import annotations

import math

from ..regions import FACE_REGIONS

_NAMES = {"eyes": "the eyes", "nose": "the nose", "mouth": "the mouth", "forehead": "the forehead",
          "cheeks": "the cheeks"}
NOTHING_STANDS_OUT = "Nothing stands out against compliant faces"
NO_NORM = "No region to change can be named: this network has no compliant-face norm (plqa calibrate fits one)"


def opening(flagged: tuple[str, float] | None) -> str:
    """The answer that comes first, one sentence: the region to change (``flagged``: ``regions.flag_region``'s
    (region, score)), that nothing stands out (region ""), or that no region can be named (None: no norm)."""
    if flagged is None:
        return f"{NO_NORM}."
    region = flagged[0]
    if not region:
        return f"{NOTHING_STANDS_OUT}."
    plural = region.endswith("s")
    return f"Change {_NAMES[region]} first: {'they stand' if plural else 'it stands'} out against compliant faces."


def first_clause(text: str) -> str:
    """The feedback's first clause: its text before the first ':' or '.' (names one region, or none)."""
    cut = min((i for i in (text.find(":"), text.find(".")) if i >= 0), default=len(text))
    return text[:cut]


def feedback(means: dict[str, float], quality: float | None = None,
             degraded: tuple[str, float] | None = None, flagged: tuple[str, float] | None = None,
             regions: int = 2) -> str:
    """The feedback from region means (``region_means``: face regions and ``face``), optionally Q̂, e.g.
    "Change the cheeks first: they stand out against compliant faces. Detail: Q̂ 0.41; lowest pixel quality
    (the paper's PLQ map) at the eyes: mean PLQ 0.21 against 0.74 for the face; then the cheeks 0.50".

    It opens with ``opening(flagged)``: the one region the network sees most unlike compliant faces (the
    deviation map; ``flagged`` = None when the backbone has no compliant-face norm). The detail follows,
    labelled: the paper's view, the ``regions`` face regions with the lowest mean PLQ (at least one; the next
    ones only while they are below the face's mean), and with ``degraded`` (``regions.degraded_region`` against a
    compliant photo of the same face) where the map lost most.
    """
    ranked = sorted((means[k], k) for k in FACE_REGIONS if not math.isnan(means.get(k, math.nan)))
    if not ranked:
        return "No face region inside the crop."
    face = means.get("face", math.nan)
    detail = [f"Q̂ {quality:.2f}"] if quality is not None else []
    worst_val, worst = ranked[0]
    more = [f"{_NAMES[k]} {v:.2f}" for v, k in ranked[1:regions] if v < face]
    detail.append(f"lowest pixel quality (the paper's PLQ map) at {_NAMES[worst]}: mean PLQ {worst_val:.2f} "
                  f"against {face:.2f} for the face" + (f", then {', '.join(more)}" if more else ""))
    if degraded is not None:
        detail.append(f"same-person comparison: against the compliant photo {_NAMES[degraded[0]]} lost most "
                      f"(saliency share ×{degraded[1]:.2f})")
    return f"{opening(flagged)} Detail: {'; '.join(detail)}."
