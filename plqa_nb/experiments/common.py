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


_DRIVING_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
DRIVING_CACHE_SIZE = 64  # maps kept (150-px maps: 64 × 180 KB); the explorers ask for the same reference again


def driving_maps(explainer, images: list[np.ndarray]) -> np.ndarray | None:
    """The counterfactual defect maps [N, S, S] that drive the region feedback and the inpainting mask
    (``attribution.counterfactual``), or None when the backbone has no compliant-face norm for the estimator.
    Maps are kept by the model configuration and the crop's bytes (the last ``DRIVING_CACHE_SIZE``): 144 forward
    passes each, and an explorer moving a slider asks again for its unchanged reference."""
    from ..attribution.counterfactual import defect_maps
    from ..backbones.base import crops_to_tensor

    if not explainer.model.compliant_norm:
        return None
    keys = [(repr(explainer.config), str(explainer.device), img.shape, hashlib.sha1(np.ascontiguousarray(img)).hexdigest())
            for img in images]
    unique = dict(zip(keys, images))  # one image per key: equal keys are equal bytes
    missing = [k for k in unique if k not in _DRIVING_CACHE]
    if missing:
        maps = defect_maps(explainer, crops_to_tensor([unique[k] for k in missing], explainer.device))
        _DRIVING_CACHE.update(zip(missing, maps))
    out = np.stack([_DRIVING_CACHE[k] for k in keys])
    for k in unique:
        _DRIVING_CACHE.move_to_end(k)
    while len(_DRIVING_CACHE) > DRIVING_CACHE_SIZE:
        _DRIVING_CACHE.popitem(last=False)
    return out


def flagged(explainer, defect: np.ndarray | None, masks: dict[str, np.ndarray]) -> tuple[str, float] | None:
    """``regions.flag_region`` of one driving map [S, S] (None without a map)."""
    from ..attribution.counterfactual import compliant_norm
    from .regions import flag_region

    return None if defect is None else flag_region(defect, masks, compliant_norm(explainer.model))
