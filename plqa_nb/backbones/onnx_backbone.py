"""Any ONNX face-recognition network as a backbone (converted by :mod:`plqa_nb.backbones.onnx_import`).

Python::

    from plqa_nb.backbones.onnx_backbone import OnnxBackbone
    backbone = OnnxBackbone("w600k_r50.onnx", crop_size=112, mean=127.5, std=127.5, channels="rgb")

By name (``load_backbone``, ``Explainer``, the CLI's ``--backbone``): ``onnx:PATH`` (a PATH without ``?``) with
options after a ``?`` as ``key=value`` pairs joined by ``&``, e.g.
``onnx:/models/r50.onnx?crop=112&mean=127.5&std=127.5&channels=bgr``:

* ``crop``: side S of the aligned square crop in pixels (default 112);
* ``mean``, ``std``: the network reads (pixel − mean) / std of 0..255 pixels (default 127.5, 127.5, the
  insightface ArcFace convention; ``mean=0&std=1`` for a graph that scales its input itself, as SFace does);
* ``channels``: ``rgb`` (default) or ``bgr``, the channel order the network expects;
* ``head``: the ONNX node where the head starts (default: the last Gemm/MatMul);
* ``template``: ``arcface`` (default: ArcFace's five-point template scaled to S) or ten numbers
  ``x1,y1,…,x5,y5`` (crop pixels; left eye, right eye, nose tip, left and right mouth corner).

The name is the backbone's ``name``, so a ``ModelConfig`` resolves from it. Its defaults are placeholders
(``ONNX_DEFAULTS``): calibrate with ``plqa calibrate --backbone onnx:...``.
"""
from __future__ import annotations

import os
from urllib.parse import parse_qsl

import numpy as np
import torch

from ..alignment import ARCFACE_TEMPLATE_112
from . import ONNX_PREFIX
from .base import Backbone, BackboneDefaults
from .onnx_import import load_onnx_split

#: placeholders until a calibration file gives (α, r) and γ for the network.
ONNX_DEFAULTS = BackboneDefaults(quality="utility", norm="l1", family="arcface")
CHANNEL_ORDERS = ("rgb", "bgr")
MAX_HEAD_FEATURES = 4096  # trunk features above this many are a flattened map: heads take its channel means
_OPTIONS = ("crop", "mean", "std", "channels", "head", "template")


def arcface_template(crop_size: int) -> np.ndarray:
    """ArcFace's 112-px five-point template scaled to an S×S crop, [5, 2] crop pixels."""
    return ARCFACE_TEMPLATE_112 * (crop_size / 112.0)


class OnnxBackbone(Backbone):
    """An ONNX network split at its head node (see the module docstring for the options).

    ``trunk``: crops [B, 3, S, S] RGB 0..255 → (channel order, (x − mean) / std) → the graph up to the head node,
    flattened to [B, F]; ``head_layers``: the rest of the graph, [B, F] → raw embedding [B, D].
    ``feature_taps``: the last modules whose maps are nearest S/8 and S/16, unless given. Building runs two grey
    crops through the network: ``ValueError`` naming the file when S does not fit it or it mixes the batch.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None, crop_size: int = 112,
                 template: np.ndarray | None = None, mean: float = 127.5, std: float = 127.5, channels: str = "rgb",
                 head: str | None = None, feature_taps: tuple[str, ...] | None = None,
                 defaults: BackboneDefaults = ONNX_DEFAULTS):
        super().__init__()
        if channels not in CHANNEL_ORDERS:
            raise ValueError(f"channels must be one of {CHANNEL_ORDERS}, not {channels!r}")
        if not std:
            raise ValueError("std must not be 0")
        split = load_onnx_split(path, head)
        self.trunk_net, self.head_net = split.trunk, split.head
        self.head_node = split.head_node
        self.name = name or f"{ONNX_PREFIX}{os.fspath(path)}"
        self.crop_size = int(crop_size)
        self.template = arcface_template(self.crop_size) if template is None else np.asarray(template, float)
        self.mean, self.std, self.channels, self.defaults = float(mean), float(std), channels, defaults
        maps, features = self._probe(source=os.fspath(path))
        # (C, h, w) of the last trunk map the flattened features are (None: they are not a map)
        self._grid = next((g for g in reversed(maps.values()) if int(np.prod(g)) == features), None)
        self.feature_taps = tuple(feature_taps) if feature_taps is not None else _nearest_taps(maps, self.crop_size)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == "bgr":
            x = x.flip(1)
        return self.trunk_net((x - self.mean) / self.std)

    def head_layers(self, features: torch.Tensor) -> torch.Tensor:
        return self.head_net(features)

    def head_features(self, features: torch.Tensor) -> torch.Tensor:
        """The features as they are, or, when they are a flattened C×h×w map of more than ``MAX_HEAD_FEATURES``
        numbers, its C channel means [B, C]."""
        if features.shape[1] <= MAX_HEAD_FEATURES or self._grid is None:
            return features
        return features.view(len(features), self._grid[0], -1).mean(-1)

    def _probe(self, source: str) -> tuple[dict[str, tuple[int, int, int]], int]:
        """Run one grey crop, then two: check that S fits the network and that the graph keeps a batch apart (a
        Reshape to a fixed batch of 1 would not). Returns the (C, h, w) of every 4-D map a trunk module outputs
        (by module name, in call order; modules that hand their input back, dropout in eval mode, left out) and
        the number F of features."""
        maps: dict[str, tuple[int, int, int]] = {}

        def record(name: str):
            def hook(_module, inputs, output):
                if isinstance(output, torch.Tensor) and output.dim() == 4 and not (inputs and output is inputs[0]):
                    maps[name] = tuple(output.shape[1:])
            return hook

        def run(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                features = self.trunk(torch.full((n, 3, self.crop_size, self.crop_size), 127.0))
                return features, self.head_layers(features)

        leaves = [(f"trunk_net.{n}", m) for n, m in self.trunk_net.named_modules() if n and not list(m.children())]
        handles = [m.register_forward_hook(record(n)) for n, m in leaves]
        try:
            features, _ = run(1)
        except Exception as exc:
            raise ValueError(f"{source} does not run on {self.crop_size}-px crops ({type(exc).__name__}: {exc}); "
                             "set the crop size the network expects (crop=S)") from None
        finally:
            for h in handles:
                h.remove()
        try:
            shape = tuple(run(2)[1].shape)
        except Exception as exc:
            shape = f"an error ({type(exc).__name__}: {exc})"
        if not (isinstance(shape, tuple) and len(shape) == 2 and shape[0] == 2):
            raise ValueError(f"{source}: a batch of 2 crops gave {shape}, not [2, D]; the graph may fix the batch "
                             "size (a Reshape to [1, ...]): export it with a dynamic batch")
        return maps, features.shape[1]


def _nearest_taps(maps: dict[str, tuple[int, int, int]], crop_size: int) -> tuple[str, ...]:
    """Names of the last modules whose maps are nearest S/8 and S/16 on a side (``maps``: module → (C, h, w))."""
    if not maps:
        return ()
    taps = []
    for target in (crop_size / 8, crop_size / 16):
        best = min(abs(g[-1] - target) for g in maps.values())
        taps.append([n for n, g in maps.items() if abs(g[-1] - target) == best][-1])
    return tuple(dict.fromkeys(taps))


def parse_onnx_name(name: str) -> dict:
    """``onnx:PATH?key=value&…`` → keyword arguments of ``OnnxBackbone`` (``path`` included, ``name`` = ``name``).

    Raises:
        ValueError: not an ``onnx:`` name, an unknown option or a bad value (named).
        FileNotFoundError: PATH does not exist.
    """
    if not name.startswith(ONNX_PREFIX):
        raise ValueError(f"'{name}' is not an ONNX backbone name ({ONNX_PREFIX}PATH[?options])")
    path, _, query = name[len(ONNX_PREFIX):].partition("?")
    if not path:
        raise ValueError(f"'{name}' names no file ({ONNX_PREFIX}PATH[?options])")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ONNX model {path} (backbone '{name}') does not exist")
    kwargs: dict = {"path": path, "name": name}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"backbone '{name}': options must read key=value&key=value ({exc})") from None
    for key, value in pairs:
        if key not in _OPTIONS:
            raise ValueError(f"backbone '{name}': unknown option '{key}'; options: {', '.join(_OPTIONS)}")
        try:
            if key == "crop":
                kwargs["crop_size"] = int(value)
                if kwargs["crop_size"] < 16:
                    raise ValueError("below 16 px")
            elif key in ("mean", "std"):
                kwargs[key] = float(value)
                if not np.isfinite(kwargs[key]) or (key == "std" and kwargs[key] == 0):
                    raise ValueError("not a finite non-zero number" if key == "std" else "not finite")
            elif key == "channels":
                if value not in CHANNEL_ORDERS:
                    raise ValueError(f"not one of {', '.join(CHANNEL_ORDERS)}")
                kwargs[key] = value
            elif key == "head":
                kwargs[key] = value
            elif value != "arcface":
                kwargs["template"] = np.array([float(v) for v in value.split(",")], float).reshape(5, 2)
        except ValueError as exc:
            raise ValueError(f"backbone '{name}': bad {key}={value!r} ({exc})") from None
    return kwargs


def onnx_crop_size(name: str) -> int:
    """The crop side S an ``onnx:`` name asks for (without converting the network)."""
    return parse_onnx_name(name).get("crop_size", 112)


def load_onnx_backbone(name: str) -> OnnxBackbone:
    """The backbone an ``onnx:PATH?options`` name describes."""
    return OnnxBackbone(**parse_onnx_name(name))


__all__ = ["CHANNEL_ORDERS", "ONNX_DEFAULTS", "ONNX_PREFIX", "OnnxBackbone", "arcface_template", "load_onnx_backbone",
           "onnx_crop_size", "parse_onnx_name"]
