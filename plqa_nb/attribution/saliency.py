"""Plain-gradient methods: the paper's PLQ saliency (Eq. 4) and input × gradient, through Captum."""
from __future__ import annotations

import torch
from captum.attr import InputXGradient, Saliency

from ..regression import QualityRegressionModel
from .base import AttributionMethod


class SaliencyMethod(AttributionMethod):
    """|∂M_Q/∂I| (Eq. 4), gradient units: shown as the PLQ map v(·)."""

    name = "saliency"
    view = "plq"
    defect_orientation = "gradient"

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return Saliency(model).attribute(images, abs=True, additional_forward_args=(weights,))


class InputXGradientMethod(AttributionMethod):
    """I · ∂M_Q/∂I (signed, units of Q̂): shown rank-normalised."""

    name = "input-x-gradient"
    view = "rank"
    defect_orientation = "contribution"

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return InputXGradient(model).attribute(images, additional_forward_args=(weights,))
