"""Backbones by name. Add one: write a ``Backbone`` subclass and ``register_backbone`` a factory.

Names: ``dlib-resnet`` (offline default), ``facenet-vggface2``, ``facenet-casia``.
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import Backbone, BackboneDefaults
from .custom import CustomBackbone

DEFAULT_BACKBONE = "dlib-resnet"

_FACTORIES: dict[str, Callable[[], Backbone]] = {}
_LOADED: dict[tuple[str, str], Backbone] = {}


def register_backbone(name: str, factory: Callable[[], Backbone]) -> None:
    """Make ``load_backbone(name)`` build a backbone with ``factory()``."""
    _FACTORIES[name] = factory


def available_backbones() -> list[str]:
    return sorted(_FACTORIES)


def load_backbone(name: str | Backbone = DEFAULT_BACKBONE, device: str | torch.device = "cpu") -> Backbone:
    """A backbone by registry name (cached per device, eval mode, no parameter gradients)."""
    if isinstance(name, Backbone):
        return name.to(device)
    if name not in _FACTORIES:
        raise KeyError(f"unknown backbone '{name}'; available: {', '.join(available_backbones())}")
    key = (name, str(device))
    if key not in _LOADED:
        model = _FACTORIES[name]().eval().to(device)
        for p in model.parameters():
            p.requires_grad_(False)
        _LOADED[key] = model
    return _LOADED[key]


def _dlib():
    from .dlib_resnet import load_dlib_resnet

    return load_dlib_resnet()


def _facenet(dataset: str) -> Callable[[], Backbone]:
    def build() -> Backbone:
        from .facenet import FaceNet

        return FaceNet(dataset)

    return build


register_backbone("dlib-resnet", _dlib)
register_backbone("facenet-vggface2", _facenet("vggface2"))
register_backbone("facenet-casia", _facenet("casia-webface"))

__all__ = ["Backbone", "BackboneDefaults", "CustomBackbone", "DEFAULT_BACKBONE", "available_backbones",
           "load_backbone", "register_backbone"]
