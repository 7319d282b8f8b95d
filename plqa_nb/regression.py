"""Stage 4: the quality regression model M_Q of Eq. 3, as a Captum-compatible module.

M_Q(I) = Σ_k w_k e_k(I) with e the backbone's normalised embedding and, for a reference
image I_ref, every w_k = Q̂(I_ref) / Σ_k e_k(I_ref) ("signed", as the authors' code:
M_Q(I_ref) = Q̂ exactly) or Q̂ / ‖e(I_ref)‖₁ ("l1", as the paper's text: M_Q(I_ref) = Q̂ Σe/‖e‖₁, and
the maps of different photos share one scale). Each backbone names its default in its defaults.

``forward(images, weights)``: images [B, 3, S, S] in 0..255, weights [B] or [B, D] (one
row per image: Captum's NoiseTunnel and IntegratedGradients expand them with the
inputs when passed as ``additional_forward_args``) → Q̂ [B].
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from .backbones.base import Backbone

SUM_GUARD = 1e-3  # |Σe| below this is clamped (keeping its sign) and a warning is issued


class _ClipGradNorm(torch.autograd.Function):
    """Identity forward; backward rescales each sample's gradient to an L2 norm ≤ max_norm."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, max_norm: float):
        ctx.max_norm = max_norm
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        norms = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
        factor = (ctx.max_norm / norms).clamp(max=1.0)
        return grad * factor.view(-1, *([1] * (grad.dim() - 1))), None


def quality_weights(embeddings: torch.Tensor, quality: torch.Tensor, norm: str = "signed",
                    guard: float = SUM_GUARD) -> torch.Tensor:
    """Eq. 3 weights [B]: Q̂ / Σ_k e_k ("signed") or Q̂ / ‖e‖₁ ("l1").

    A signed sum with |Σe| < guard is clamped to ±guard with a warning: the map of such
    an image is then scaled down (its M_Q(I_ref) is below Q̂), never infinite.
    """
    embeddings, quality = embeddings.detach(), quality.detach()
    if norm == "signed":
        total = embeddings.sum(-1)
        small = total.abs() < guard
        if small.any():
            warnings.warn(f"Σe of {int(small.sum())} image(s) is within ±{guard}: clamped, their maps are "
                          "damped; consider norm='l1'", RuntimeWarning, stacklevel=2)
            sign = torch.where(total < 0, -1.0, 1.0).to(total)
            total = torch.where(small, sign * guard, total)
    elif norm == "l1":
        total = embeddings.abs().sum(-1)
    else:
        raise ValueError(f"norm must be 'signed' or 'l1', not {norm!r}")
    return quality / total


class QualityRegressionModel(nn.Module):
    """FR network + one bias-free linear quality node (Eq. 3); output Q̂ [B].

    Args:
        backbone: the FR network.
        clip_grad: if set, each image's input gradient is rescaled to L2 norm ≤ clip_grad
            (the paper recommends gradient clipping); None leaves gradients untouched.
        estimate: the quality estimator M_Q stands for, images [B, 3, S, S] → raw Q [B] (for counterfactual
            methods, which explain the estimator itself; None when unknown).
    """

    def __init__(self, backbone: Backbone, clip_grad: float | None = None,
                 estimate: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.backbone = backbone
        self.clip_grad = clip_grad
        self.estimate = estimate

    def forward(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.clip_grad is not None:
            images = _ClipGradNorm.apply(images, self.clip_grad)
        return self.from_embeddings(self.backbone(images), weights)

    @staticmethod
    def from_embeddings(embeddings: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The linear quality node alone: embeddings [B, D], weights [B] or [B, D] → [B]."""
        w = weights if weights.dim() == 2 else weights[:, None]
        return (embeddings * w).sum(-1)
