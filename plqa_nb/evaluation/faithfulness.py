"""Faithfulness of attribution maps for a scalar quality: deletion and insertion curves.

In the spirit of "On Evaluating Pixel-Level Face Image Quality Assessment" (EUSIPCO 2022):
a map orders the pixels of a crop, most useful first. Curve point k changes the first
k·``step`` of the pixels (all 3 channels at once), k = 0..``steps``; the defaults (2 %,
50 steps) cover the whole crop, fewer steps cover its most useful part at the same
resolution (10 steps: the first 20 %):

* deletion: those pixels are replaced by a filler ("black", "blur" or "mean", see
  ``plqa_nb.attribution.baselines``); a faithful map makes Q̂ fall fast → low AUC;
* insertion: starting from the blurred face, those pixels get their original value back;
  a faithful map makes Q̂ rise fast → high AUC.

Q̂ comes from a quality function (e.g. the Explainer's estimator with a fixed seed), so
every curve point is a real quality estimate. AUC: trapezoid area divided by the covered
fraction, i.e. the mean Q̂ along the curve, in units of Q̂ whatever ``steps``. The random
baseline uses ``n`` random pixel orders per face (``face_random_orders``); a map "beats
random" when its deletion AUC is below (insertion AUC above) the *median* random AUC of
the same face. The median, not the mean: a map of pure noise is just another random order,
so it beats the median in exactly half of the cases in expectation, whatever the (skewed,
estimator-dependent) distribution of random AUCs; against the mean that share depends on
the skew.

All curve points of all faces and orders go through ``quality_fn`` in chunks of
``chunk`` images; the first points (the face, its blur) are computed once per face.

Captum's ``infidelity`` (Gaussian input perturbations) and ``sensitivity_max`` (map change
under small uniform noise) are wrapped for the quality regression model M_Q.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable, Sequence

import torch
from captum.metrics import infidelity, sensitivity_max

from ..attribution.base import AttributionMethod, seeded_global_rng
from ..attribution.baselines import reference_images
from ..quality.base import seeded_generator
from ..regression import QualityRegressionModel

QualityFn = Callable[[torch.Tensor], torch.Tensor]  # images [N, 3, S, S] (0..255) → Q̂ [N]


def curve_fractions(steps: int = 50, step: float = 0.02) -> torch.Tensor:
    """The fractions of pixels changed at each curve point, [steps + 1]: 0, step, ..., ≤ 1."""
    if steps < 1 or not 0 < step <= 1 or (steps - 1) * step >= 1:
        raise ValueError(f"need steps >= 1 and 0 < step <= 1 with (steps - 1)·step < 1, not {steps}, {step}")
    return (torch.arange(steps + 1, dtype=torch.float64) * step).clamp(max=1.0).float()


def pixel_order(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixel indices (into the flattened S×S map) by decreasing map value, [..., S·S].

    maps [..., S, S]. Ties are broken by a random permutation drawn from ``seed`` (the same
    for every map), so flat regions are not removed in row order.
    """
    flat = maps.flatten(-2)
    g = seeded_generator(seed, "cpu")
    perm = torch.randperm(flat.shape[-1], generator=g).to(flat.device)
    idx = torch.argsort(flat[..., perm], dim=-1, descending=True, stable=True)
    return perm[idx]


def random_orders(n: int, n_pixels: int, seed: int = 0) -> torch.Tensor:
    """``n`` random pixel orders [n, n_pixels] drawn from ``seed``."""
    g = seeded_generator(seed, "cpu")
    return torch.stack([torch.randperm(n_pixels, generator=g) for _ in range(n)])


def face_random_orders(names: Sequence[str], n: int, n_pixels: int, seed: int = 0) -> torch.Tensor:
    """``n`` random pixel orders per face [B, n, n_pixels], drawn from ``seed`` and the face's name (its file
    name, without folders): independent between faces, the same for a face in any batch, and the same on
    every machine (a checksum of the pixels would follow the CPU's rounding in detection and alignment)."""
    seeds = [(zlib.crc32(PurePath(str(name)).name.encode()) + 1_000_003 * seed) % 2**63 for name in names]
    return torch.stack([random_orders(n, n_pixels, s) for s in seeds])


def auc(values: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Area under curves values [..., P] over fractions [P] (trapezoid), divided by the covered
    fraction: the mean value along the curve."""
    f = fractions.to(values)
    return torch.trapezoid(values, f, dim=-1) / (f[-1] - f[0])


@dataclass
class Curves:
    """Deletion and insertion curves of B faces × K orders.

    fractions: [P]; deletion, insertion: Q̂ [B, K, P] (insertion None when not asked for);
    deletion_auc, insertion_auc: [B, K].
    """

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor | None

    @property
    def deletion_auc(self) -> torch.Tensor:
        return auc(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> torch.Tensor | None:
        return None if self.insertion is None else auc(self.insertion, self.fractions)


def faithfulness_curves(images: torch.Tensor, orders: torch.Tensor, quality_fn: QualityFn, steps: int = 50,
                        filler: str = "black", step: float = 0.02, chunk: int = 64, insertion: bool = True) -> Curves:
    """Deletion (and insertion) curves for crops [B, 3, S, S] (0..255) under pixel orders.

    orders: [B, K, S·S] (per face) or [K, S·S] (the same K orders for every face), most
    useful pixel first. ``filler`` replaces deleted pixels; insertion starts from the blur.
    """
    b, _, s, _ = images.shape
    n = s * s
    orders = orders.to(images.device)
    if orders.dim() == 2:
        orders = orders.expand(b, -1, -1)
    k = orders.shape[1]
    fractions = curve_fractions(steps, step)
    counts = (fractions.double() * n).round().long().to(images.device)  # pixels changed at each point [P]
    # position of each pixel in each order: pos[b, k, pixel] = rank
    pos = torch.empty_like(orders).scatter_(-1, orders, torch.arange(n, device=images.device).expand_as(orders))
    starts, targets = [images], [reference_images(images, filler)]  # deletion: from the image to the filler
    if insertion:  # insertion: from the blur to the image
        starts.append(reference_images(images, "blur"))
        targets.append(images)
    starts, targets = torch.stack(starts), torch.stack(targets)  # [C, B, 3, S, S]
    c_n = len(starts)
    # the first points are shared by all orders: Q̂ of the image and of its blur, once per face
    q_first = torch.cat([quality_fn(part).detach() for part in starts.flatten(0, 1).split(chunk)])
    out = torch.empty(c_n, b, k, steps + 1, device=images.device, dtype=q_first.dtype)
    out[..., 0] = q_first.view(c_n, b, 1)
    grid = torch.meshgrid(torch.arange(c_n), torch.arange(b), torch.arange(k), torch.arange(1, steps + 1),
                          indexing="ij")
    jobs = torch.stack([g.flatten() for g in grid], 1).to(images.device)  # [J, 4]: (curve, face, order, point)
    for part in jobs.split(chunk):
        c, bi, ki, ji = part.unbind(1)
        mask = (pos[bi, ki] < counts[ji][:, None]).view(-1, 1, s, s)
        out[c, bi, ki, ji] = quality_fn(torch.where(mask, targets[c, bi], starts[c, bi])).detach().to(out.dtype)
    return Curves(fractions=fractions.to(images.device), deletion=out[0], insertion=out[1] if insertion else None)


def quality_infidelity(model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor,
                       attributions: torch.Tensor, n_samples: int = 10, noise: float = 0.05,
                       seed: int = 0) -> torch.Tensor:
    """Captum's infidelity [B] of raw attributions for M_Q under Gaussian perturbations I of
    std ``noise``·255: E[(Iᵀ·attr − (M_Q(x) − M_Q(x − I)))²], attributions rescaled optimally
    (``normalize=True``) so methods of different units compare. Lower is better."""

    def perturb(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        delta = torch.randn_like(x) * (noise * 255.0)
        return delta, x - delta

    with seeded_global_rng(seed, images.device):
        return infidelity(model, perturb, images, attributions, additional_forward_args=(weights,),
                          n_perturb_samples=n_samples, normalize=True).detach()


def quality_sensitivity(method: AttributionMethod, model: QualityRegressionModel, images: torch.Tensor,
                        weights: torch.Tensor, n_samples: int = 5, radius: float = 0.02,
                        seed: int = 0) -> torch.Tensor:
    """Captum's sensitivity_max [B]: the largest relative change (Frobenius) of the method's
    map under ``n_samples`` uniform input perturbations of radius ``radius``·255. Lower is
    more stable. Costs n_samples + 1 attributions per face."""

    def explain(x: tuple[torch.Tensor], additional_forward_args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
        (images_,) = x  # Captum passes inputs as a 1-tuple
        attr = method.compute(model, images_.detach().requires_grad_(True), additional_forward_args[0])
        return (attr.detach().contiguous(),)

    with seeded_global_rng(seed, images.device):
        return sensitivity_max(explain, images, perturb_radius=radius * 255.0, n_perturb_samples=n_samples,
                               additional_forward_args=(weights,)).detach()
