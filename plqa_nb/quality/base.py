"""The quality-estimator contract and the scaling of Eq. 2.

An estimator maps aligned crops (float [B, 3, S, S], 0..255) to a raw, model-specific
quality Q [B]; ``QualityScaling`` turns it into Q̂ = sigmoid(alpha (Q - r)) in [0, 1].
Estimators are deterministic given ``seed``, and each image's result does not depend
on which other images share its batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backbones.base import Backbone


@dataclass(frozen=True)
class QualityScaling:
    """Eq. 2 and the PLQ exponent: Q̂ = sigmoid(alpha (Q - r)); gamma for v(·) of Eq. 6."""

    alpha: float
    r: float
    gamma: float

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.alpha * (q - self.r))


class QualityEstimator:
    """Base: ``raw(backbone, crops, features=None, seed=0)`` → Q [B].

    ``features`` (the trunk's output for ``crops``) may be passed to reuse a forward pass.
    """

    name = "estimator"
    #: keys of a calibration file that carry this estimator's per-backbone state (see ``use_calibration``)
    calibration_keys: tuple[str, ...] = ()

    def fit(self, backbone: Backbone, dev) -> dict:
        """Fit per-backbone state from a development set (``devset.DevSet``: its clean faces, and its probes
        with their genuine similarities) before (alpha, r) are fitted; returns the JSON-ready entries to
        store in the calibration file (none by default)."""
        return {}

    def out_of_fold_raw(self, backbone: Backbone, dev, folds: int = 5, seed: int = 0):
        """For an estimator trained on the development set: raw Q of its probes [P] and references [F·K], each
        predicted by a model fitted without that face's identity (so that (alpha, r) are fitted on what unseen
        photos get). None (the default) for estimators that are not trained on it."""
        return None

    def use_calibration(self, record: dict) -> None:
        """Take per-backbone state from a calibration file's dict (its ``calibration_keys``; nothing by default)."""

    def raw(self, backbone: Backbone, crops: torch.Tensor, features: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        raise NotImplementedError


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def seeded_uniform(shape: tuple[int, ...], seed: int, device: torch.device | str,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) numbers drawn on the CPU from ``seed`` and moved to ``device``.

    Drawing on the CPU makes a seed give the same numbers on every device, so CPU and
    GPU runs agree.
    """
    return torch.rand(shape, generator=seeded_generator(seed, "cpu"), dtype=dtype).to(device)
