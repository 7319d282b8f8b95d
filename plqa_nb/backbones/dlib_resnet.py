"""dlib's face-descriptor ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (a ResNet-34-like net trained with a
metric loss, 150×150 RGB chips → 128-d descriptor), with its weights read from the ``.dat``
file of the PyPI package ``face_recognition_models`` by our own parser
(:mod:`plqa_nb.backbones.dlib_format`). The converted ``state_dict`` is cached once per user
(``$PLQA_CACHE`` or ``~/.cache/plqa_nb``).

Layer by layer, as dlib computes it:

* input: ``(pixel - mean_rgb) / 256`` with the means stored in the file;
* stem: conv 7×7/2 (32, no padding) → affine (folded batch norm) → relu → max-pool 3×3/2;
* residual blocks: conv 3×3/s → affine → relu → conv 3×3/1 → affine, added to the block
  input, then relu. dlib pads a 3×3 conv by 1 only at stride 1 (0 at stride 2). A
  down-sampling block (stride 2) adds the 2×2/2 average-pooled input instead; when channels
  or sizes differ dlib adds with zero padding at the end of each dimension (channels,
  bottom rows, right columns), and the sum takes the larger shape: the 128→256 block adds a
  3×3 conv output to a 4×4 pooled input and so outputs 4×4.
  Stages: 3×32, 4×64 (first down), 3×128 (first down), 3×256 (first down), 1×256 (down);
* global average pool → 256 features (``trunk``) → fc without bias → 128 (``head_layers``).
"""
from __future__ import annotations

import importlib.util
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelUnavailableError
from .base import Backbone, BackboneDefaults
from .cache import cache_dir, write_cache
from .dlib_format import DlibLayer, read_dlib_resnet_weights

__all__ = ["DlibResNet", "dlib_add", "dlib_model_path", "load_dlib_resnet"]

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
#: bump when the module layout or the conversion changes: old cache files are then ignored.
CACHE_VERSION = "plqa1"
CACHE_FILE = f"dlib_face_recognition_resnet_model_v1.{CACHE_VERSION}.pt"

# (channels, number of blocks, first block down-samples), input side first.
_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


def dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``tt::add`` of two [B,C,H,W] tensors of possibly different C, H, W.

    The result has the larger size in each dimension; each input is zero-padded at the end
    (extra channels, bottom rows, right columns). Differentiable, not in place.
    """
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Affine(nn.Module):
    """dlib's ``affine_`` in conv mode: per-channel ``x * weight + bias``."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    # dlib's default padding: k//2 at stride 1, none otherwise.
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if stride == 1 else 0, bias=True)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = _conv(cin, cout, 3, 2 if down else 1)
        self.affine1 = _Affine(cout)
        self.conv2 = _conv(cout, cout, 3, 1)
        self.affine2 = _Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(dlib_add(y, shortcut))


class DlibResNet(Backbone):
    """dlib's ResNet face descriptor split for the quality pipeline.

    ``trunk``: crops [B,3,150,150] RGB in 0..255 → 256-d average-pooled features;
    ``head_layers``: the 128×256 fc without bias; ``descriptor``: dlib's raw 128-d descriptor
    (what ``dlib.face_recognition_model_v1.compute_face_descriptor`` returns for a chip).

    The module is built with neutral weights; use :func:`load_dlib_resnet` (cached) or
    :meth:`from_dlib_file` for the trained ones.
    """

    name = "dlib-resnet"
    crop_size = 150
    # Where MTCNN's 5 points fall, on average, in dlib's 150-px chip (padding 0.25): measured on
    # 40 London photos by scripts/derive_dlib_template.py (fit RMS 1.5 px).
    template = np.array([[46.37, 45.79], [101.85, 45.57], [74.18, 74.01], [51.88, 105.08], [96.75, 105.02]])
    # The utility head is the default estimator (quality/utility.py). Eq. 3 uses the paper's ‖e‖₁: the signed Σe of
    # the authors' code scales each map by 1/|Σe|, which varies from photo to photo (and explodes near 0) on this
    # 128-d embedding, so maps would not be comparable. Every fitted value is in plqa_nb/shipped/dlib-resnet.json.
    defaults = BackboneDefaults(quality="utility", norm="l1")
    # 17×17 after the first block of the 64-channel stage, 8×8 at the end of the 128-channel stage (150-px crop)
    feature_taps = ("blocks.3", "blocks.9")
    reentrant = True

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.conv0 = _conv(3, 32, 7, 2)
        self.affine0 = _Affine(32)
        blocks = []
        cin = 32
        for cout, n, down in _STAGES:
            for i in range(n):
                blocks.append(_ResBlock(cin, cout, down and i == 0))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    # -- the Backbone contract -------------------------------------------------------

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean_rgb) / 256.0
        x = F.max_pool2d(F.relu(self.affine0(self.conv0(x))), 3, 2)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def head_layers(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """dlib's raw (not normalised) 128-d face descriptor of crops [B,3,150,150] in 0..255."""
        return self.head_layers(self.trunk(x))

    # -- weights from dlib's file ----------------------------------------------------

    def _plan(self) -> list[tuple[str, nn.Module | None, dict]]:
        """The layer records dlib's file holds for this network, in data-flow order."""
        plan: list[tuple[str, nn.Module | None, dict]] = [
            ("input", None, {}), ("con", self.conv0, {}), ("affine", self.affine0, {}), ("relu", None, {}),
            ("max_pool", None, {"window": (3, 3), "stride": (2, 2)}),
        ]
        for b in self.blocks:
            plan += [("tag_or_skip", None, {}), ("con", b.conv1, {}), ("affine", b.affine1, {}), ("relu", None, {}),
                     ("con", b.conv2, {}), ("affine", b.affine2, {})]
            if b.down:
                plan += [("tag_or_skip", None, {}), ("tag_or_skip", None, {}),
                         ("avg_pool", None, {"window": (2, 2), "stride": (2, 2)})]
            plan += [("add_prev", None, {}), ("relu", None, {})]
        plan += [("avg_pool", None, {"window": (0, 0)}), ("fc", self.fc, {}), ("loss", None, {})]
        return plan

    def load_dlib_layers(self, layers: list[DlibLayer], source: str = "<dlib layers>") -> "DlibResNet":
        """Copy weights from :func:`read_dlib_resnet_weights` records; checks the architecture.

        Raises:
            ValueError naming ``source`` if the records are not this network.
        """
        plan = self._plan()
        kinds = [r.kind for r in layers]
        expected = [p[0] for p in plan]
        if kinds != expected:
            first = next((i for i, (a, b) in enumerate(zip(kinds, expected)) if a != b), min(len(kinds), len(plan)))
            raise ValueError(f"{source}: the dlib network is not dlib_face_recognition_resnet_model_v1 "
                             f"({len(kinds)} layers, expected {len(plan)}; first difference at layer {first})")

        def bad(i: int, what: str) -> ValueError:
            return ValueError(f"{source}: layer {i} ({layers[i].kind}): {what}")

        with torch.no_grad():
            for i, (rec, (kind, module, attrs)) in enumerate(zip(layers, plan)):
                for key, value in attrs.items():
                    if tuple(rec.attrs.get(key, ())) != value:
                        raise bad(i, f"{key} = {rec.attrs.get(key)}, expected {value}")
                if kind == "input":
                    if tuple(rec.attrs["size"]) != (self.crop_size, self.crop_size):
                        raise bad(i, f"input size {rec.attrs['size']}, expected {self.crop_size}")
                    self.mean_rgb.copy_(torch.tensor(rec.attrs["mean_rgb"], dtype=torch.float32).view(1, 3, 1, 1))
                elif kind == "con":
                    assert isinstance(module, nn.Conv2d)
                    if (tuple(rec.attrs["stride"]) != module.stride or tuple(rec.attrs["padding"]) != module.padding
                            or tuple(rec.arrays["weight"].shape) != tuple(module.weight.shape)):
                        raise bad(i, f"conv {rec.arrays['weight'].shape} stride {rec.attrs['stride']} padding "
                                     f"{rec.attrs['padding']} does not match {module}")
                    module.weight.copy_(torch.from_numpy(rec.arrays["weight"]))
                    bias = rec.arrays.get("bias")
                    module.bias.copy_(torch.from_numpy(bias) if bias is not None else torch.zeros_like(module.bias))
                elif kind == "affine":
                    assert isinstance(module, _Affine)
                    if rec.attrs.get("mode") != "conv" or rec.arrays["gamma"].shape != tuple(module.weight.shape):
                        raise bad(i, f"affine of {rec.arrays['gamma'].shape} ({rec.attrs.get('mode')} mode), "
                                     f"expected {tuple(module.weight.shape)} in conv mode")
                    module.weight.copy_(torch.from_numpy(rec.arrays["gamma"]))
                    module.bias.copy_(torch.from_numpy(rec.arrays["beta"]))
                elif kind == "fc":
                    assert isinstance(module, nn.Linear)
                    if rec.arrays["weight"].shape != tuple(module.weight.shape) or "bias" in rec.arrays:
                        raise bad(i, f"fc {rec.arrays['weight'].shape}, expected {tuple(module.weight.shape)} "
                                     "without bias")
                    module.weight.copy_(torch.from_numpy(rec.arrays["weight"]))
        return self

    @classmethod
    def from_dlib_file(cls, path: str | os.PathLike) -> "DlibResNet":
        """Build the network with the weights parsed from dlib's ``.dat`` file (no cache)."""
        return cls().load_dlib_layers(read_dlib_resnet_weights(path), source=os.fspath(path)).eval()


def dlib_model_path(filename: str = MODEL_FILE) -> str:
    """Path of a model file shipped by ``face_recognition_models`` (without importing it).

    Raises:
        ModelUnavailableError: the package (or the file) is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the dlib face-descriptor weights come from the package 'face_recognition_models', which is not "
            "installed: pip install face_recognition_models")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", filename)
    if not os.path.isfile(path):
        raise ModelUnavailableError(f"{path} is missing: reinstall with "
                                    "pip install --force-reinstall face_recognition_models")
    return path


def load_dlib_resnet(device: str | torch.device = "cpu") -> DlibResNet:
    """The trained dlib ResNet in eval mode on ``device``.

    The first call parses dlib's file and caches the converted state_dict as
    ``<cache_dir()>/dlib_face_recognition_resnet_model_v1.<version>.pt`` (written atomically);
    later calls load that. An unreadable cache is rebuilt; an unwritable folder only warns.

    Raises:
        ModelUnavailableError: ``face_recognition_models`` is not installed.
        ValueError: the ``.dat`` file is malformed.
    """
    model = DlibResNet()
    cache = os.path.join(cache_dir(), CACHE_FILE)
    loaded = False
    if os.path.isfile(cache):
        try:
            model.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True), strict=True)
            loaded = True
        except Exception as exc:  # stale or damaged cache: convert again
            warnings.warn(f"ignoring unreadable cache {cache} ({type(exc).__name__}: {exc}); converting again")
    if not loaded:
        src = dlib_model_path()
        model.load_dlib_layers(read_dlib_resnet_weights(src), source=src)
        write_cache(cache, lambda tmp: torch.save(model.state_dict(), tmp), "the converted dlib weights")
    return model.eval().to(device)

