"""Wrap any face-recognition ``nn.Module`` (an insightface ArcFace iresnet, say) as a backbone.

The user names the trunk (crop → features before the last dropout) and the head
(features → embedding). Example for an insightface iresnet ``net``::

    trunk = nn.Sequential(net.conv1, net.bn1, net.prelu, net.layer1, net.layer2,
                          net.layer3, net.layer4, net.bn2, nn.Flatten())
    head = nn.Sequential(net.fc, net.features)
    backbone = CustomBackbone(trunk, head, name="arcface-r100")
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..alignment import ARCFACE_TEMPLATE_112
from .base import Backbone, BackboneDefaults

# uncalibrated, a custom network starts from the paper's ArcFace values (plqa_nb/shipped/paper/arcface.json)
ARCFACE_DEFAULTS = BackboneDefaults(quality="serfiq", family="arcface")


class CustomBackbone(Backbone):
    """A user network split into ``trunk`` and ``head`` modules.

    Args:
        trunk: crops normalised as (x - mean) / std → features [B, F].
        head: features [B, F] → raw embedding [B, D].
        crop_size: S of the S×S crop (ArcFace: 112).
        template: [5, 2] landmark template in crop pixels (ArcFace's by default).
        mean, std: pixel normalisation applied to 0..255 crops.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, name: str = "custom", crop_size: int = 112,
                 template: np.ndarray | None = ARCFACE_TEMPLATE_112, mean: float = 127.5, std: float = 127.5,
                 defaults: BackboneDefaults = ARCFACE_DEFAULTS):
        super().__init__()
        self.trunk_net, self.head_net = trunk.eval(), head.eval()
        self.name, self.crop_size, self.template, self.defaults = name, crop_size, template, defaults
        self.mean, self.std = mean, std

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_net((x - self.mean) / self.std).flatten(1)

    def head_layers(self, features: torch.Tensor) -> torch.Tensor:
        return self.head_net(features)
