"""facenet-pytorch's InceptionResnetV1 (the paper's FaceNet family), 160×160 crops.

The pretrained weights are downloaded by facenet-pytorch into the torch cache on first
use; offline, a missing file raises ``ModelUnavailableError`` naming it.
"""
from __future__ import annotations

import os

import torch

from ..errors import ModelUnavailableError
from .base import Backbone, BackboneDefaults

CHECKPOINTS = {
    "vggface2": "20180402-114759-vggface2.pt",
    "casia-webface": "20180408-102900-casia-webface.pt",
}


def checkpoint_path(dataset: str) -> str:
    """Where facenet-pytorch keeps (or would download) the checkpoint of ``dataset``."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    return os.path.join(get_torch_home(), "checkpoints", CHECKPOINTS[dataset])


class FaceNet(Backbone):
    """InceptionResnetV1 split at its dropout: trunk → 1792-d pooled features, head → 512-d.

    Pixel normalisation: (x - 127.5) / 128 (facenet-pytorch's fixed standardisation).
    """

    crop_size = 160
    template = None  # facenet-pytorch crops the detector box and resizes it
    # uncalibrated, it starts from the paper's FaceNet values (plqa_nb/shipped/paper/facenet.json)
    defaults = BackboneDefaults(quality="serfiq", family="facenet")
    feature_taps = ("net.repeat_1", "net.repeat_2")  # 17×17 and 8×8 on a 160-px crop
    reentrant = True

    def __init__(self, dataset: str | None = "vggface2"):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        self.name = f"facenet-{'casia' if dataset == 'casia-webface' else dataset or 'random'}"
        if dataset is not None and not os.path.isfile(checkpoint_path(dataset)):
            try:
                net = InceptionResnetV1(pretrained=dataset)
            except Exception as exc:  # offline: name the file, where it goes, the fallback
                raise ModelUnavailableError(
                    f"facenet-pytorch weights '{CHECKPOINTS[dataset]}' are not in the torch cache and could "
                    f"not be downloaded ({type(exc).__name__}). Put the file at {checkpoint_path(dataset)} "
                    f"or use the offline default backbone 'dlib-resnet'."
                ) from None
        else:
            net = InceptionResnetV1(pretrained=dataset)
        self.net = net.eval()

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = (x - 127.5) / 128.0
        for layer in (n.conv2d_1a, n.conv2d_2a, n.conv2d_2b, n.maxpool_3a, n.conv2d_3b, n.conv2d_4a,
                      n.conv2d_4b, n.repeat_1, n.mixed_6a, n.repeat_2, n.mixed_7a, n.repeat_3, n.block8,
                      n.avgpool_1a):
            x = layer(x)
        return x.flatten(1)

    def head_layers(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.last_bn(self.net.last_linear(features))
