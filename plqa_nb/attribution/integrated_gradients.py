"""Integrated Gradients (Captum) from a per-image baseline: black, blurred face or mean colour.

Attributions are signed, in units of Q̂ (they sum to about M_Q(I) − M_Q(baseline)):
shown rank-normalised. ``internal_batch_size`` bounds how many path points go through
the network at once, so memory stays bounded for any ``n_steps``.
"""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients

from ..regression import QualityRegressionModel
from .base import AttributionMethod
from .baselines import reference_images


class IntegratedGradientsMethod(AttributionMethod):
    """Args: name, baseline ("black" | "blur" | "mean", see ``baselines``), n_steps (20),
    internal_batch_size path points per pass (32)."""

    view = "rank"
    defect_orientation = "contribution"

    def __init__(self, name: str, baseline: str = "black", n_steps: int = 20, internal_batch_size: int = 32):
        self.name, self.baseline, self.n_steps, self.internal_batch_size = name, baseline, n_steps, internal_batch_size

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return IntegratedGradients(model).attribute(
            images, baselines=reference_images(images, self.baseline), additional_forward_args=(weights,),
            n_steps=self.n_steps, internal_batch_size=max(self.internal_batch_size, images.shape[0]))
