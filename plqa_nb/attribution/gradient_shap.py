"""GradientSHAP (Captum): expected gradients over a baseline distribution plus input noise.

The distribution is fixed and the same for every image: flat grey images at ``levels``
(0..255, default black to white in 5 levels). Captum draws baselines and path points
from numpy's and torch's global RNGs, seeded by ``attribute``; the draws run over the
whole batch, so a face's map is reproducible for the same batch, not batch-independent.
Signed, units of Q̂: shown rank-normalised.
"""
from __future__ import annotations

import torch
from captum.attr import GradientShap

from ..regression import QualityRegressionModel
from .base import AttributionMethod


class GradientShapMethod(AttributionMethod):
    """Args: n_samples per image (10), stdev of the input noise as a fraction of 255 (0.05),
    levels: grey levels of the baseline distribution."""

    name = "gradient-shap"
    view = "rank"
    defect_orientation = "contribution"

    def __init__(self, n_samples: int = 10, stdev: float = 0.05,
                 levels: tuple[float, ...] = (0.0, 63.75, 127.5, 191.25, 255.0)):
        self.n_samples, self.stdev, self.levels = n_samples, stdev, levels

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        flat = torch.tensor(self.levels, device=images.device, dtype=images.dtype)
        baselines = flat.view(-1, 1, 1, 1).expand(len(self.levels), *images.shape[1:]).contiguous()
        return GradientShap(model).attribute(images, baselines=baselines, n_samples=self.n_samples,
                                             stdevs=self.stdev * 255.0, additional_forward_args=(weights,))
