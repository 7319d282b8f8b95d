"""Guided backpropagation: the gradient with every ReLU passing back only positive signal.

Captum's GuidedBackprop hooks ``nn.ReLU`` modules, but backbones may call ``F.relu``
(dlib-resnet does), which Captum would silently treat as a plain gradient. Here every
relu call of the forward pass is intercepted with a ``TorchFunctionMode`` instead, so
modules and functional calls alike get the guided rule
∂/∂x = (x > 0) · max(grad, 0). Gradient units: shown as PLQ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..regression import QualityRegressionModel
from .base import AttributionMethod


class _GuidedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class _GuidedReluMode(TorchFunctionMode):
    """Inside this mode, relu (functional, module or tensor method) uses the guided backward."""

    RELUS = (F.relu, torch.relu, torch.Tensor.relu)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.RELUS:
            return _GuidedRelu.apply(args[0])
        return func(*args, **(kwargs or {}))


class GuidedBackpropMethod(AttributionMethod):
    name = "guided-backprop"
    view = "plq"
    defect_orientation = "gradient"

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x = images.detach().requires_grad_(True)
        with torch.enable_grad(), _GuidedReluMode():
            out = model(x, weights)
        (grad,) = torch.autograd.grad(out.sum(), x)
        return grad
