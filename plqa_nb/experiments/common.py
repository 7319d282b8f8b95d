"""What the experiments share: the face they work on (``stages.FaceCrop``), per-face randomness, image/map
panels and result rows."""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..batch import atomic_save_npz
from ..degradations import face_rng
from ..stages import FaceCrop, FaceLike, as_face_crop

__all__ = ["FaceCrop", "FaceLike", "FaceResult", "Panel", "as_face_crop", "face_rng", "load_panels", "save_panels",
           "table"]


@dataclass
class Panel:
    """One image of a figure grid: image uint8 [S, S, 3], its PLQ map [S, S], Q̂ and a label."""

    image: np.ndarray
    plq: np.ndarray
    quality: float
    label: str


def save_panels(path: str | os.PathLike, panels: list[Panel]) -> None:
    """Write panels to an .npz (atomic; maps as float16)."""
    atomic_save_npz(path, images=np.stack([p.image for p in panels]),
                    plq=np.stack([p.plq for p in panels]).astype(np.float16),
                    quality=np.array([p.quality for p in panels], np.float64),
                    labels=np.array([p.label for p in panels]))


def load_panels(path: str | os.PathLike) -> list[Panel]:
    """Read panels written by ``save_panels``."""
    with np.load(path) as z:
        return [Panel(img, plq.astype(np.float32), float(q), str(lab))
                for img, plq, q, lab in zip(z["images"], z["plq"], z["quality"], z["labels"])]


@dataclass
class FaceResult:
    """One face of an experiment: ``rows`` (dicts with the experiment's CSV columns), ``panels`` (images and
    PLQ maps for its figure grid), for inpainting the inpainted ``mask`` bool [S, S], and for ICAO occlusions
    the ``localization`` rows (``evaluation.localization.COLUMNS``)."""

    file: str
    rows: list[dict]
    panels: list[Panel] = field(repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    localization: list[dict] = field(default_factory=list, repr=False)


def table(results: list[FaceResult]) -> list[dict]:
    """All rows of all faces, e.g. for ``pandas.DataFrame(table(results))``."""
    return [row for r in results for row in r.rows]


_MAP_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
MAP_CACHE_SIZE = 64  # maps kept (150-px maps: 64 × 180 KB); the explorers ask for the same reference again


def _cached_maps(kind: str, compute, explainer, images: list[np.ndarray]) -> np.ndarray:
    """``compute(crops)`` [N, S, S] for the images, kept by kind, the whole model configuration (``ModelConfig``
    compares by content: estimator, its state, scaling, the compliant-face norm, the weights' fingerprint), device
    and the crop's bytes (the last ``MAP_CACHE_SIZE``): an explorer moving a slider asks again for its unchanged
    reference."""
    from ..backbones.base import crops_to_tensor

    keys = [(kind, explainer.config, str(explainer.device), img.shape,
             hashlib.sha1(np.ascontiguousarray(img)).hexdigest()) for img in images]
    unique = dict(zip(keys, images))  # one image per key: equal keys are equal bytes
    missing = [k for k in unique if k not in _MAP_CACHE]
    if missing:
        _MAP_CACHE.update(zip(missing, compute(crops_to_tensor([unique[k] for k in missing], explainer.device))))
    out = np.stack([_MAP_CACHE[k] for k in keys])
    for k in unique:
        _MAP_CACHE.move_to_end(k)
    while len(_MAP_CACHE) > MAP_CACHE_SIZE:
        _MAP_CACHE.popitem(last=False)
    return out


def deviations_of(out: dict) -> np.ndarray | None:
    """The deviation maps [N, S, S] (float64) of an ``Explainer.explain_tensor`` output, taken from its own
    network pass, or None when the backbone has no compliant-face norm."""
    dev = out.get("deviation")
    return None if dev is None else dev.cpu().double().numpy()


def deviation_maps(explainer, images: list[np.ndarray]) -> np.ndarray | None:
    """The deviation maps [N, S, S] that drive the region feedback (``attribution.deviation``; one forward pass
    each, cached for explorers that ask again), or None when the backbone has no compliant-face norm. Where the
    images were just explained, ``deviations_of`` the explanation costs no pass."""
    from ..attribution.deviation import deviation_maps as compute

    if not explainer.has_compliant_norm:
        return None
    norm = explainer.compliant_norm().features
    return _cached_maps("deviation", lambda x: compute(explainer.backbone, x, norm).cpu().double().numpy(),
                        explainer, images)


def counterfactual_maps(explainer, images: list[np.ndarray]) -> np.ndarray | None:
    """The counterfactual defect maps [N, S, S] behind the inpainting mask (``attribution.counterfactual``; 144
    forward passes each), or None when the backbone has no compliant-face norm."""
    from ..attribution.counterfactual import defect_maps

    if not explainer.has_compliant_norm:
        return None
    return _cached_maps("counterfactual", lambda x: defect_maps(explainer, x), explainer, images)


def flagged(explainer, deviation: np.ndarray | None, masks: dict[str, np.ndarray]) -> tuple[str, float] | None:
    """``regions.flag_region`` of one deviation map [S, S] (None without a map)."""
    from ..regions import flag_region

    return None if deviation is None else flag_region(deviation, masks, explainer.compliant_norm().features)


@dataclass(frozen=True)
class StandsOut:
    """What stands out in one aligned image: its deviation map [S, S] (None without a compliant-face norm), the
    flag (``regions.flag_region``'s (region or "", score), None without a norm), the flagged part, bool [S, S]
    (all False when nothing stands out), the face-region masks it was judged on (``regions.region_masks``) and
    the flag threshold (None without a norm)."""
    deviation: np.ndarray | None
    flag: tuple[str, float] | None
    part: np.ndarray
    masks: dict[str, np.ndarray]
    threshold: float | None


def stands_out(explainer, image: np.ndarray, landmarks: np.ndarray) -> StandsOut:
    """``StandsOut`` of one aligned image uint8 [S, S, 3] with its landmarks [5, 2] (crop px)."""
    from ..regions import flag_part, region_masks

    masks = region_masks(landmarks, image.shape[0])
    maps = deviation_maps(explainer, [image])
    if maps is None:
        return StandsOut(None, None, np.zeros(image.shape[:2], bool), masks, None)
    norm = explainer.compliant_norm().features
    region, score, part = flag_part(maps[0], masks, norm)
    return StandsOut(maps[0], (region, score), part, masks, norm.threshold)
