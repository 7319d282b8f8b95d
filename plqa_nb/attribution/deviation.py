"""Deviation: where does the network see this face differ from compliant faces?

The backbone's own feature maps at two depths (``Backbone.feature_taps``: for dlib-resnet the 17×17 map after the
first block of its second stage and the 8×8 map at the end of its third, on a 150-px crop) are compared, cell by
cell, with their mean and spread over compliant aligned faces (``FeatureNorm``, fitted on the London *smiling*
photos and shipped; refitted by ``plqa calibrate``). A cell's deviation is its mean squared z-score over the
channels, divided by the level that compliant faces unseen by the norm show at that depth; the two depths are
upsampled bilinearly to the crop and averaged: [B, S, S], about 1 on a typical compliant face, no upper bound.

It is not an attribution of Q̂: it says *what* is unlike a compliant face as the recognition network sees it, one
forward pass per image, whatever the estimator. The counterfactual map (``attribution.counterfactual``) says how
much Q̂ would gain there. Deviation drives the region feedback (``regions.flag_region``): chosen by
measurement (it localises occluders best of the registered maps: docs/results/attribution.md), because with a
good backbone a cap or a hand lowers Q̂ too little to stand out by its counterfactual gain alone.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.base import Backbone, module_outputs
from ..regression import QualityRegressionModel
from .base import AttributionMethod, missing_norm

FALSE_FLAGS = 0.25  # share of compliant faces allowed a flagged region (sets the threshold; docs/analyses.md)
FOLDS = 5  # the threshold is set on compliant faces the norm was not fitted on (out of fold)
_MIN_STD = 1e-3  # floor of a feature's spread (a channel that is constant on compliant faces)


def pack_array(a: np.ndarray) -> dict:
    """An array as JSON: its shape and its float16 bytes in base64 (``unpack_array`` reads it back)."""
    return {"shape": list(a.shape), "float16_base64": base64.b64encode(a.astype("<f2").tobytes()).decode()}


def unpack_array(rec: dict) -> np.ndarray:
    """The float32 array of a ``pack_array`` record."""
    return np.frombuffer(base64.b64decode(rec["float16_base64"]), "<f2").astype(np.float32).reshape(rec["shape"])


@dataclass(frozen=True)
class FeatureNorm:
    """Compliant faces in a backbone's feature space.

    taps: module names (``Backbone.feature_taps``); mean, std: per tap float32 [C, h, w]; level: per tap, the mean
    cell deviation of compliant faces the moments were not fitted on; threshold: the region score (mean deviation
    in a face part) above which a region stands out, set out of fold so that ``FALSE_FLAGS`` of compliant faces
    reach it.
    """

    taps: tuple[str, ...]
    mean: tuple[np.ndarray, ...]
    std: tuple[np.ndarray, ...]
    level: tuple[float, ...]
    threshold: float

    def record(self) -> dict:
        """JSON-ready entries (arrays as float16, base64)."""
        return {"taps": list(self.taps), "mean": [pack_array(m) for m in self.mean],
                "std": [pack_array(s) for s in self.std],
                "level": list(self.level), "threshold": self.threshold}

    @classmethod
    def from_record(cls, rec: dict) -> "FeatureNorm":
        return cls(tuple(rec["taps"]), tuple(unpack_array(m) for m in rec["mean"]),
                   tuple(unpack_array(s) for s in rec["std"]),
                   tuple(float(v) for v in rec["level"]), float(rec["threshold"]))


def feature_taps(backbone: Backbone, crop_size: int, device: torch.device | str = "cpu") -> tuple[str, ...]:
    """The backbone's ``feature_taps``, or (none declared) its last feature map with more than one cell."""
    if backbone.feature_taps:
        return tuple(backbone.feature_taps)
    from .grad_cam import last_conv_block

    block = last_conv_block(backbone, crop_size, device)
    return (next(name for name, m in backbone.named_modules() if m is block),)


def feature_maps(backbone: Backbone, images: torch.Tensor, taps: tuple[str, ...]) -> list[torch.Tensor]:
    """The outputs [B, C, h, w] of the modules named ``taps`` for crops [B, 3, S, S] (0..255), no gradient."""
    with module_outputs(backbone, taps) as out, torch.no_grad():
        backbone.trunk(images)
    return [out[t] for t in taps]


def _cell_deviation(feats: list[torch.Tensor], mean, std) -> list[torch.Tensor]:
    """Per tap: mean over channels of the squared z-score, [B, h, w]."""
    return [(((f - torch.as_tensor(m).to(f)) / torch.as_tensor(s).to(f)) ** 2).mean(1)
            for f, m, s in zip(feats, mean, std)]


def _combined(cells: list[torch.Tensor], level: tuple[float, ...], size: int) -> torch.Tensor:
    """Per-tap cell deviations [B, h, w] divided by their level, upsampled to [B, size, size] and averaged."""
    return torch.stack([F.interpolate((c / lvl)[:, None], (size, size), mode="bilinear", align_corners=False)[:, 0]
                        for c, lvl in zip(cells, level)]).mean(0)


def deviation_from_features(feats: list[torch.Tensor], norm: FeatureNorm, size: int) -> torch.Tensor:
    """Deviation maps [B, size, size] of the tapped feature maps [B, C, h, w] (in ``norm.taps``' order) of crops
    of side ``size``: the map of ``deviation_maps`` when the features come from another pass over the crops."""
    return _combined(_cell_deviation(feats, norm.mean, norm.std), norm.level, size)


def deviation_maps(backbone: Backbone, images: torch.Tensor, norm: FeatureNorm) -> torch.Tensor:
    """Deviation maps [B, S, S] of crops [B, 3, S, S] (see the module docstring): one forward pass."""
    return deviation_from_features(feature_maps(backbone, images, norm.taps), norm, images.shape[-1])


def _moments(feats: list[torch.Tensor]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per tap: mean and spread over the faces, as stored (float16 precision)."""
    mean = tuple(f.mean(0).cpu().numpy().astype(np.float16).astype(np.float32) for f in feats)
    std = tuple(f.std(0, unbiased=False).clamp(min=_MIN_STD).cpu().numpy().astype(np.float16).astype(np.float32)
                for f in feats)
    return mean, std


def fit_feature_norm(backbone: Backbone, crops: torch.Tensor, masks: list[dict[str, np.ndarray]],
                     batch_size: int = 16) -> FeatureNorm:
    """The ``FeatureNorm`` of compliant crops [N, 3, S, S] with their region masks (``regions.region_masks``).

    Out of fold (``FOLDS``): each face is scored by a norm fitted on the other folds. The level of each tap is the
    mean deviation of those unseen compliant faces (so a new compliant face reads about 1), and the threshold is
    the (1 − ``FALSE_FLAGS``) quantile of their highest region score.
    """
    from ..regions import flag_scores

    n, s = crops.shape[0], crops.shape[-1]
    if n <= FOLDS:
        raise ValueError(f"the feature norm needs at least {FOLDS + 1} compliant faces, got {n}")
    taps = feature_taps(backbone, s, crops.device)
    parts = [feature_maps(backbone, b, taps) for b in crops.split(batch_size)]
    feats = [torch.cat([p[k] for p in parts]) for k in range(len(taps))]
    fold = torch.arange(n, device=crops.device) % FOLDS
    cells = [torch.empty_like(f[:, 0]) for f in feats]
    for k in range(FOLDS):
        test = fold == k
        for c, dev in zip(cells, _cell_deviation([f[test] for f in feats], *_moments([f[~test] for f in feats]))):
            c[test] = dev
    level = tuple(float(c.mean()) for c in cells)
    maps = _combined(cells, level, s).cpu().double().numpy()
    top = [max(score for _, score in flag_scores(m, masks[i])) for i, m in enumerate(maps)]
    return FeatureNorm(taps, *_moments(feats), level, threshold=float(np.quantile(top, 1 - FALSE_FLAGS)))


class HasFeatureNorm(Protocol):
    """What the deviation map reads of a compliant-face norm (``compliant_norm.CompliantNorm``)."""

    features: FeatureNorm


class DeviationMethod(AttributionMethod):
    """The deviation map as an attribution method, repeated over the 3 channels (defect orientation: the map is
    the defect score). Args: compliant_norm, the network's norm (an ``Explainer`` hands over its calibration's)."""

    name = "deviation"
    view = "rank"
    defect_orientation = "defect"
    uses_compliant_norm = True

    def __init__(self, compliant_norm: HasFeatureNorm | None = None):
        self.compliant_norm = compliant_norm

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.compliant_norm is None:
            raise missing_norm(model.backbone.name)
        dev = deviation_maps(model.backbone, images.detach(), self.compliant_norm.features)
        return dev[:, None].expand(-1, images.shape[1], -1, -1).contiguous()
