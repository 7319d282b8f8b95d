"""The paper's PLQ saliency (Eq. 4): |∂M_Q/∂I|, through Captum's Saliency."""
from __future__ import annotations

import torch
from captum.attr import Saliency

from ..regression import QualityRegressionModel
from .base import AttributionMethod


class SaliencyMethod(AttributionMethod):
    name = "saliency"
    view = "plq"

    def attribute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor,
                  seed: int = 0) -> torch.Tensor:
        return Saliency(model).attribute(images, abs=True, additional_forward_args=(weights,))
