"""Grad-CAM (Captum's LayerGradCam) on the backbone's last convolutional block, upsampled.

The block is found by running one crop: the last module whose output is a feature map
with more than one pixel (for dlib-resnet the last residual block, 2×2 at S=150, so the
map is coarse). The ReLU'd class-activation map is upsampled bilinearly to S×S and
repeated over the 3 channels. Units are arbitrary: shown rank-normalised.
"""
from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ..backbones.base import Backbone
from ..regression import QualityRegressionModel
from .base import AttributionMethod


def last_conv_block(backbone: Backbone, crop_size: int, device: torch.device | str = "cpu") -> nn.Module:
    """The last submodule (in execution order) whose output is [B, C, h, w] with h·w > 1."""
    found: list[nn.Module] = []

    def hook(module: nn.Module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
            found.append(module)

    handles = [m.register_forward_hook(hook) for m in backbone.modules() if m is not backbone]
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, crop_size, crop_size, device=device))
    finally:
        for h in handles:
            h.remove()
    if not found:
        raise ValueError(f"{type(backbone).__name__} has no convolutional feature map for Grad-CAM")
    return found[-1]


class GradCamMethod(AttributionMethod):
    name = "grad-cam"
    view = "rank"
    defect_orientation = "evidence"

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s = images.shape[-1]
        layer = last_conv_block(model.backbone, s, images.device)
        cam = LayerGradCam(model, layer).attribute(images, additional_forward_args=(weights,),
                                                   relu_attributions=True)
        up = LayerAttribution.interpolate(cam, (s, s), interpolate_mode="bilinear")
        return up.expand(-1, images.shape[1], -1, -1).contiguous()
