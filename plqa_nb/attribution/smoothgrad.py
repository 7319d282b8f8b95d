"""SmoothGrad family through Captum's NoiseTunnel over the plain gradient.

n noisy copies per image (Gaussian, σ = ``stdev`` · 255, drawn from torch's global RNG
seeded by ``attribute``), gradients combined as mean ("smoothgrad", gradient units,
shown as PLQ), mean of squares ("smoothgrad_sq", squared units) or variance ("vargrad");
the last two are shown rank-normalised.
"""
from __future__ import annotations

import torch
from captum.attr import NoiseTunnel, Saliency

from ..regression import QualityRegressionModel
from .base import AttributionMethod


class NoiseTunnelMethod(AttributionMethod):
    """SmoothGrad and its kin: averages of gradient magnitudes (defect orientation "gradient"). Args: name, nt_type (Captum's "smoothgrad" | "smoothgrad_sq" | "vargrad"), view,
    n_samples noisy copies (10), stdev as a fraction of 255 (0.15), batch_size noisy
    copies per pass (None: all n at once; set it to bound memory)."""

    def __init__(self, name: str, nt_type: str, view: str, n_samples: int = 10, stdev: float = 0.15,
                 batch_size: int | None = None):
        self.name, self.nt_type, self.view = name, nt_type, view
        self.defect_orientation = "gradient"
        self.n_samples, self.stdev, self.batch_size = n_samples, stdev, batch_size

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return NoiseTunnel(Saliency(model)).attribute(
            images, nt_type=self.nt_type, nt_samples=self.n_samples, nt_samples_batch_size=self.batch_size,
            stdevs=self.stdev * 255.0, abs=False, additional_forward_args=(weights,))
