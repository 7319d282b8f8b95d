"""The attribution-method contract.

A method explains the scalar Q̂ of the ``QualityRegressionModel``: given crops
[B, 3, S, S] (0..255) and per-image Eq. 3 weights [B], it returns raw attributions
[B, 3, S, S]. Per-image weights travel as Captum's ``additional_forward_args``.
``view`` says how maps are made comparable: "plq" (v(·) with gamma, for gradient
methods) or "rank" (rank-normalised to [0, 1] for side-by-side viewing).
"""
from __future__ import annotations

import torch

from ..regression import QualityRegressionModel


class AttributionMethod:
    name = "method"
    view = "plq"

    def attribute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor,
                  seed: int = 0) -> torch.Tensor:
        raise NotImplementedError
