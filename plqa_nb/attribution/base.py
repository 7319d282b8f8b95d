"""The attribution-method contract.

A method explains the scalar Q̂ of the ``QualityRegressionModel``: given crops
[B, 3, S, S] (0..255) and per-image Eq. 3 weights [B], it returns raw attributions
[B, 3, S, S]. Per-image weights travel as Captum's ``additional_forward_args``.

Every method states two facts about its maps (class attributes, checked by ``get_method``):

* ``view``, how its map is shown (``displayed``, what ``plqa explain --method`` and ``plqa compare`` both show):
  "plq" is v(Ŝ) = 1 − 1/(1 + 10^γ Ŝ²) of Eq. 6 on the Eq. 5 channel mean of |·| with the backbone's γ, only for
  maps in gradient units (∂Q̂/∂pixel on 0..255), where γ means the same as for the paper's map; "rank" is, per image,
  the rank of each pixel's usefulness (the opposite of its defect score) scaled to [0, 1], for side-by-side viewing,
  not for comparing levels across images;
* ``defect_orientation``, how its map becomes a defect score (``defect``: higher = more to blame): "gradient" maps
  (saliency, SmoothGrad, guided backprop) measure how much a pixel *can* move Q̂, and the paper reads a low value as
  a useless pixel, so defect = −log(|map|); "contribution" maps (Integrated Gradients, input × gradient, gradient
  SHAP, occlusion, the counterfactual) are signed shares of Q̂ relative to a baseline, so defect = −(sum over the
  channels); "evidence" maps (Grad-CAM) are positive evidence for Q̂, defect = −map; "defect" maps (the deviation
  map) already are defect scores.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ..plq import merge_channels, plq_from_saliency
from ..regression import QualityRegressionModel

VIEWS = ("plq", "rank")
ORIENTATIONS = ("gradient", "contribution", "evidence", "defect")
# images (windowed copies, all images of the batch together) per network pass of the occlusion-type maps: bigger
# passes allocate tensors that glibc maps and unmaps at every pass, and the page faults cost more than the batching
# gains (docs/results/benchmark.md, the counterfactual map)
IMAGES_PER_PASS = 32


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's and numpy's global RNGs with ``seed`` inside the block, restoring them after.

    Captum's NoiseTunnel and GradientShap draw from these global generators.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            yield
    finally:
        np.random.set_state(np_state)


def defect_scores(attribution: torch.Tensor, kind: str) -> np.ndarray:
    """Defect scores [B, S, S] (higher = more to blame) of raw attributions [B, 3, S, S] (or [B, S, S] maps) of a
    method of defect orientation ``kind`` (see the module docstring)."""
    a = attribution.detach().double().cpu()
    if kind == "gradient":
        mag = a.abs().mean(1) if a.dim() == 4 else a.abs()
        return (-torch.log(mag.clamp(min=1e-30))).numpy()
    if kind == "contribution":
        return (-(a.sum(1) if a.dim() == 4 else a)).numpy()
    if kind == "evidence":
        return (-(a.mean(1) if a.dim() == 4 else a)).numpy()
    if kind == "defect":
        return (a.mean(1) if a.dim() == 4 else a).numpy()
    raise ValueError(f"unknown defect orientation '{kind}'; use one of {', '.join(ORIENTATIONS)}")


def rank_view(maps: torch.Tensor) -> torch.Tensor:
    """Maps [B, S, S] → their pixels' ranks scaled to [0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    flat = maps.detach().flatten(1).cpu().double().numpy()
    ranks = (rankdata(flat, axis=1) - 1) / max(flat.shape[1] - 1, 1)
    return torch.from_numpy(ranks).to(maps.device, maps.dtype).view_as(maps)


def windows_per_pass(images: torch.Tensor, images_per_pass: int) -> int:
    """Captum's ``perturbations_per_eval`` for a batch ``images`` [B, C, H, W]: about ``images_per_pass`` windowed
    copies through the network at once, at least one window of each image."""
    return max(1, images_per_pass // images.shape[0])


def missing_norm(backbone: str) -> ValueError:
    """The error for a map that needs a compliant-face norm the network's calibration does not have."""
    return ValueError(f"no compliant-face norm for backbone '{backbone}': run `plqa calibrate DEV_PHOTOS --backbone "
                      f"{backbone} --out calib.json` and pass --calibration calib.json")


class AttributionMethod:
    """Base: subclasses set ``name``, ``view`` and ``defect_orientation`` (module docstring) and implement
    ``compute``."""

    name = "method"
    view = "plq"
    defect_orientation = ""  # a subclass must say which of ORIENTATIONS its maps are
    uses_compliant_norm = False  # True: the constructor takes the network's ``compliant_norm``

    def defect(self, attribution: torch.Tensor) -> np.ndarray:
        """Defect scores [B, S, S] (higher = more to blame) of this method's raw attributions [B, 3, S, S]."""
        return defect_scores(attribution, self.defect_orientation)

    def displayed(self, attribution: torch.Tensor, gamma: float) -> torch.Tensor:
        """The map shown for raw attributions [B, 3, S, S], [B, S, S] in [0, 1] (higher = more useful): Eq. 6 with
        ``gamma`` for the "plq" view, the per-image usefulness rank for "rank"."""
        if self.view == "plq":
            return plq_from_saliency(merge_channels(attribution), gamma)
        return rank_view(torch.from_numpy(-self.defect(attribution))).to(attribution)

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Raw attributions [B, 3, S, S] of Q̂ for images [B, 3, S, S] (0..255), weights [B].

        Stochastic methods draw from torch's/numpy's global RNGs here; use ``attribute``.
        """
        raise NotImplementedError

    def attribute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor,
                  seed: int = 0) -> torch.Tensor:
        """``compute`` with the global RNGs seeded from ``seed`` (and left as they were afterwards)."""
        with seeded_global_rng(seed, images.device):
            return self.compute(model, images.detach().requires_grad_(True), weights).detach()
