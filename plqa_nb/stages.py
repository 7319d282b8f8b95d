"""The stages of the flow (DESIGN.md §3), each in one function, and the data they pass on.

    image → detect + align (``prepare_face``) → network pass (``network_pass``: trunk features,
    embedding, and the gradient of Σ_k e_k) → raw quality (``raw_quality``) → Q̂, Eq. 3 weight,
    saliency and PLQ map (``maps_from_pass``)

The quality regression model M_Q(I) = w · Σ_k e_k(I) has a weight w that is a constant for the
gradient (Eq. 3), so ∂M_Q/∂I = w · ∂(Σ_k e_k)/∂I: one backward pass of the *unit* model Σ_k e_k
serves any estimator, scaling (α, r), norm and γ — those are arithmetic on the cached pass. Per-image
gradient clipping (L2 ≤ c) is arithmetic too: the clipped gradient is w·g·min(1, c / (|w|·‖g‖)).
Both the batch ``Explainer`` and the single-face ``FaceAnalysis`` (``plqa_nb.pipeline``) call these
functions, so they agree by construction.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Union

import numpy as np
import torch

from .alignment import AlignedFace, align_face, take_aligned
from .backbones.base import Backbone, module_outputs
from .config import ModelConfig
from .detection import ALIGNED, DEFAULT_DETECTOR, Detection, detect_faces
from .errors import InputError, NumericalError
from .images import MAX_PIXELS, ImageLike, describe, iter_image_files, load_image
from .plq import merge_channels, overlay_on_photo, plq_from_saliency
from .quality import QualityEstimator
from .regression import quality_weights

_CROP_SIZED_SEEN: set[str] = set()  # backbones whose crop-sized inputs prepare_face has warned about
CLIP_NORM_FLOOR = 1e-12  # as in regression._ClipGradNorm: gradient norms below this count as this


@dataclass
class PreparedFace:
    """A loaded photo and its aligned face. photo: uint8 [H, W, 3] (None where a caller dropped it)."""

    source: str
    photo: np.ndarray | None
    detection: Detection
    aligned: AlignedFace


class FaceCrop(NamedTuple):
    """An aligned face: ``name`` (file or label), crop uint8 [S, S, 3], landmarks [5, 2] in crop px."""

    name: str
    crop: np.ndarray
    landmarks: np.ndarray


FaceLike = Union[FaceCrop, PreparedFace, tuple]


def as_face_crop(face: FaceLike) -> FaceCrop:
    """A PreparedFace (from ``Explainer.prepare``) or a (name, crop, landmarks) tuple → FaceCrop."""
    if isinstance(face, PreparedFace):
        return FaceCrop(face.source, face.aligned.crop, np.asarray(face.aligned.landmarks, np.float64))
    name, crop, landmarks = face
    return FaceCrop(str(name), np.asarray(crop, np.uint8), np.asarray(landmarks, np.float64))


@dataclass
class Explanation:
    """What plqa_nb says about one face.

    crop: uint8 [S, S, 3]; plq, saliency: float32 [S, S]; embedding: float32 [D];
    quality: Q̂ in [0, 1]; quality_raw: the estimator's Q; matrix: [2, 3] photo → crop; deviation: float32 [S, S],
    the deviation map (``attribution.deviation``) where the configuration has a compliant-face norm, else None.
    """

    source: str
    crop: np.ndarray
    plq: np.ndarray
    saliency: np.ndarray
    embedding: np.ndarray
    quality: float
    quality_raw: float
    faces_found: int
    matrix: np.ndarray
    backbone: str
    quality_method: str
    attribution: str
    photo: np.ndarray | None = field(default=None, repr=False)
    deviation: np.ndarray | None = field(default=None, repr=False)

    def overlay(self, alpha: float = 0.55) -> np.ndarray:
        """The PLQ map warped back and blended onto the original photo, uint8 [H, W, 3]."""
        if self.photo is None:
            raise ValueError("no original photo kept for this explanation")
        return overlay_on_photo(self.photo, self.plq, self.matrix, alpha)

    def figure(self):
        """A matplotlib figure: crop, PLQ map (and overlay when the photo is kept), Q̂ in the title."""
        from .figures import explanation_figure

        return explanation_figure(self)


# -- stage 1-2: load, detect, align --------------------------------------------------------------------------
def prepare_face(image: ImageLike, backbone: Backbone, device: str | torch.device = "cpu",
                 max_pixels: int = MAX_PIXELS, detector: str = DEFAULT_DETECTOR) -> PreparedFace:
    """Load (refusing images above ``max_pixels`` before decoding them), detect (the largest face, with
    ``detector``) and align to ``backbone``'s crop; raises InputError subclasses. With ``detector`` "aligned"
    (``detection.ALIGNED``) the image is the aligned crop already: ``alignment.take_aligned``."""
    source = describe(image)
    photo = load_image(image, max_pixels)
    if detector == ALIGNED:
        return PreparedFace(source, photo, *take_aligned(photo, source, backbone.crop_size, backbone.template))
    if photo.shape[0] == photo.shape[1] == backbone.crop_size and backbone.name not in _CROP_SIZED_SEEN:
        _CROP_SIZED_SEEN.add(backbone.name)  # once per process and backbone: a folder of crops gets one warning
        side = backbone.crop_size
        warnings.warn(f"{source} is {side}×{side} px, the size of {backbone.name}'s aligned crop: if it is one, "
                      f"detector '{ALIGNED}' (--detector {ALIGNED}) takes it as it is; a detector cuts it again, "
                      "resampled and a little off", stacklevel=2)
    detection = detect_faces(photo, source, device=str(device), detector=detector)
    aligned = align_face(photo, detection, backbone.crop_size, backbone.template)
    return PreparedFace(source, photo, detection, aligned)


def aligned_faces(folder: str | os.PathLike, prepare: Callable[[Path], PreparedFace], limit: int | None = None,
                  on_skip: Callable[[str], None] | None = None) -> list[FaceCrop]:
    """The aligned faces of the image files under ``folder`` (recursive, sorted by path; the first ``limit``):
    ``prepare(file)`` each (e.g. ``Explainer.prepare``), skipping files without a usable face (``InputError``),
    whose messages go to ``on_skip`` (default: standard error)."""
    faces = []
    for f in sorted(iter_image_files([folder]))[:limit]:
        try:
            faces.append(as_face_crop(prepare(f)))
        except InputError as exc:
            (on_skip or (lambda msg: print(f"skipped {msg}", file=sys.stderr)))(str(exc))
    return faces


# -- stage 3: the network pass --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkPass:
    """One pass of a backbone over crops [B, 3, S, S] (0..255).

    features [B, F] (the trunk's output), embedding [B, D] (normalised); with the gradient:
    unit_gradient [B, 3, S, S] = ∂(Σ_k e_k)/∂I, the input gradient of M_Q for a weight of 1, and
    unit_norm [B], its L2 norm per image (for clipping); tapped: the outputs [B, C, h, w] of the modules named
    in the call's ``taps``, in that order (the deviation map's feature maps). Everything detached.
    """

    features: torch.Tensor
    embedding: torch.Tensor
    unit_gradient: torch.Tensor | None = None
    unit_norm: torch.Tensor | None = None
    tapped: tuple[torch.Tensor, ...] = ()


def network_pass(backbone: Backbone, crops: torch.Tensor, gradient: bool = True,
                 taps: tuple[str, ...] = ()) -> NetworkPass:
    """Trunk and head once, keeping the outputs of the modules named ``taps``; with ``gradient`` one backward
    pass of Σ_k e_k to the pixels."""
    x = crops.detach().float().requires_grad_(gradient)
    with module_outputs(backbone, taps) as out, torch.set_grad_enabled(gradient):
        feats = backbone.trunk(x)
        emb = backbone.head(feats)
    tapped = tuple(out[t].detach() for t in taps)
    if not gradient:
        return NetworkPass(feats.detach(), emb.detach(), tapped=tapped)
    (grad,) = torch.autograd.grad(emb.sum(), x)
    return NetworkPass(feats.detach(), emb.detach(), grad.detach(), grad.detach().flatten(1).norm(dim=1), tapped)


# -- stage 4: quality ------------------------------------------------------------------------------------------
def raw_quality(estimator: QualityEstimator, backbone: Backbone, crops: torch.Tensor, net: NetworkPass | None,
                seed: int) -> torch.Tensor:
    """The estimator's raw Q [B] of crops, reusing the pass's trunk features when given."""
    return estimator.raw(backbone, crops.detach(), features=None if net is None else net.features, seed=seed).detach()


# -- stages 5-7: Q̂, M_Q's weight, saliency, PLQ ---------------------------------------------------------------
def clip_scale(weights: torch.Tensor, unit_norm: torch.Tensor, clip_grad: float | None) -> torch.Tensor:
    """Per-image factor [B] in (0, 1] that brings the gradient w·g to an L2 norm ≤ ``clip_grad`` (1 if None)."""
    if clip_grad is None:
        return torch.ones_like(weights)
    norms = (weights.abs() * unit_norm).clamp(min=CLIP_NORM_FLOOR)
    return (clip_grad / norms).clamp(max=1.0)


def scaled_quality(embedding: torch.Tensor, raw: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """Q̂ [B] (Eq. 2) of raw qualities [B] and the Eq. 3 weights [B] of embeddings [B, D]."""
    q_hat = config.scaling()(raw)
    return q_hat, quality_weights(embedding, q_hat, config.norm)


def require_finite(attribution: torch.Tensor, hint: str = "") -> None:
    """NumericalError when any face's attribution [B, ...] has a non-finite value (how many faces, and ``hint``)."""
    bad = ~torch.isfinite(attribution.flatten(1)).all(1)
    if bad.any():
        raise NumericalError(f"non-finite attributions for {int(bad.sum())} of {len(bad)} face(s){hint}")


def explanation(source: str, aligned: AlignedFace, maps: dict[str, torch.Tensor], i: int, faces_found: int,
                backbone: str, quality_method: str, attribution: str,
                photo: np.ndarray | None = None) -> Explanation:
    """The ``Explanation`` of face ``i`` of a batch's maps (``maps_from_pass`` or ``Explainer.explain_tensor``)."""
    def map_of(key: str) -> np.ndarray:
        return maps[key][i].detach().cpu().numpy().astype(np.float32)

    return Explanation(source=source, crop=aligned.crop, plq=map_of("plq"), saliency=map_of("saliency"),
                       embedding=map_of("embedding"), quality=float(maps["quality"][i]),
                       quality_raw=float(maps["quality_raw"][i]), faces_found=faces_found, matrix=aligned.matrix,
                       backbone=backbone, quality_method=quality_method, attribution=attribution, photo=photo,
                       deviation=map_of("deviation") if "deviation" in maps else None)


def maps_from_pass(net: NetworkPass, raw: torch.Tensor, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Q̂ (Eq. 2), the Eq. 3 weights, |∂M_Q/∂I| and the maps of Eqs. 5-6 from a pass with its gradient.

    Returns quality, quality_raw, weights [B]; embedding [B, D]; attribution [B, 3, S, S] (|∂M_Q/∂I|, as
    Captum's Saliency(abs=True)); saliency, plq [B, S, S]. Raises NumericalError on non-finite gradients.
    """
    q_hat, w = scaled_quality(net.embedding, raw, config)
    scale = w.abs() * clip_scale(w, net.unit_norm, config.clip_grad)
    attribution = net.unit_gradient.abs() * scale.view(-1, 1, 1, 1)
    require_finite(attribution, "; try clip_grad or norm='l1'")
    saliency = merge_channels(attribution)
    return {"quality": q_hat, "quality_raw": raw, "weights": w, "embedding": net.embedding,
            "attribution": attribution, "saliency": saliency, "plq": plq_from_saliency(saliency, config.gamma)}
