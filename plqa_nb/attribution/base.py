"""The attribution-method contract.

A method explains the scalar Q̂ of the ``QualityRegressionModel``: given crops
[B, 3, S, S] (0..255) and per-image Eq. 3 weights [B], it returns raw attributions
[B, 3, S, S]. Per-image weights travel as Captum's ``additional_forward_args``.

Comparable maps (``plqa_nb.evaluation.comparison``): every method's raw attribution is
merged over channels as Eq. 5 (mean of |·|); ``view`` says how that map is shown:

* "plq": v(Ŝ) = 1 − 1/(1 + 10^γ Ŝ²) of Eq. 6 with the backbone's γ. Only for maps in
  gradient units (∂Q̂/∂pixel on 0..255), where γ means the same as for the paper's map;
* "rank": each map's pixels replaced by their rank, scaled to [0, 1] (per image, so it
  is for side-by-side viewing, not for comparing levels across images).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ..regression import QualityRegressionModel


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's and numpy's global RNGs with ``seed`` inside the block, restoring them after.

    Captum's NoiseTunnel and GradientShap draw from these global generators.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            yield
    finally:
        np.random.set_state(np_state)


class AttributionMethod:
    """Base: subclasses set ``name`` and ``view`` and implement ``compute``."""

    name = "method"
    view = "plq"

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Raw attributions [B, 3, S, S] of Q̂ for images [B, 3, S, S] (0..255), weights [B].

        Stochastic methods draw from torch's/numpy's global RNGs here; use ``attribute``.
        """
        raise NotImplementedError

    def attribute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor,
                  seed: int = 0) -> torch.Tensor:
        """``compute`` with the global RNGs seeded from ``seed`` (and left as they were afterwards)."""
        with seeded_global_rng(seed, images.device):
            return self.compute(model, images.detach().requires_grad_(True), weights).detach()
