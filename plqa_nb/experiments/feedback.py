"""Enrolment feedback in words: which face regions lower the pixel quality most, with numbers."""
from __future__ import annotations

import math

from ..regions import FACE_REGIONS

_NAMES = {"eyes": "the eyes", "nose": "the nose", "mouth": "the mouth", "forehead": "the forehead",
          "cheeks": "the cheeks"}


def feedback(means: dict[str, float], quality: float | None = None,
             degraded: tuple[str, float] | None = None, flagged: tuple[str, float] | None = None,
             regions: int = 2) -> str:
    """One sentence from region means (``region_means``: face regions and ``face``) and optionally Q̂, e.g.
    "Q̂ 0.41; the cheeks stand out against compliant faces: change them first; lowest pixel quality at
    the eyes: mean PLQ 0.21 against 0.74 for the face; then the cheeks 0.50".

    With ``flagged`` (``regions.flag_region``: the region that the network sees most unlike compliant faces,
    by the deviation map, or "" when none stands out) it says first which part must change, or that nothing stands out.
    Then the paper's view: the ``regions`` face regions with the lowest mean PLQ (at least one; the next ones
    only while they are below the face's mean). With ``degraded`` (``regions.degraded_region`` against a
    compliant photo of the face) it adds where the map lost most, e.g. "; against the compliant photo the
    cheeks lost most (saliency share ×0.41)".
    """
    ranked = sorted((means[k], k) for k in FACE_REGIONS if not math.isnan(means.get(k, math.nan)))
    face = means.get("face", math.nan)
    if not ranked:
        return "no face region inside the crop"
    text = f"Q̂ {quality:.2f}; " if quality is not None else ""
    if flagged is not None:
        region, _ = flagged
        text += (f"{_NAMES[region]} stand{'' if region.endswith('s') else 's'} out against compliant faces: "
                 f"change {'them' if region.endswith('s') else 'it'} first; " if region
                 else "nothing stands out against compliant faces; ")
    worst_val, worst = ranked[0]
    text += f"lowest pixel quality at {_NAMES[worst]}: mean PLQ {worst_val:.2f} against {face:.2f} for the face"
    more = [f"{_NAMES[k]} {v:.2f}" for v, k in ranked[1:regions] if v < face]
    text += f"; then {', '.join(more)}" if more else ""
    if degraded is not None:
        text += f"; against the compliant photo {_NAMES[degraded[0]]} lost most (saliency share ×{degraded[1]:.2f})"
    return text
