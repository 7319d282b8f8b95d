"""The whole flow for one image or a batch: load → detect → align → quality → M_Q → attribution → PLQ.

``Explainer`` holds the configured parts; ``explain(image)`` is the one-call API::

    from plqa_nb import explain
    result = explain("photo.jpg")
    result.quality, result.plq, result.crop, result.figure()
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .alignment import AlignedFace, align_face
from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .backbones.base import crops_to_tensor
from .detection import Detection, detect_faces
from .errors import NumericalError
from .images import MAX_PIXELS, ImageLike, describe, load_image
from .plq import merge_channels, overlay_on_photo, plq_from_saliency
from .quality import QualityEstimator, QualityScaling, default_scaling, get_estimator, read_calibration
from .regression import QualityRegressionModel, _ClipGradNorm, quality_weights


@dataclass
class PreparedFace:
    """A loaded photo and its aligned face. photo: uint8 [H, W, 3]."""

    source: str
    photo: np.ndarray
    detection: Detection
    aligned: AlignedFace


@dataclass
class Explanation:
    """What plqa_nb says about one face.

    crop: uint8 [S, S, 3]; plq, saliency: float32 [S, S]; embedding: float32 [D];
    quality: Q̂ in [0, 1]; quality_raw: the estimator's Q; matrix: [2, 3] photo → crop.
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

    def overlay(self, alpha: float = 0.55) -> np.ndarray:
        """The PLQ map warped back and blended onto the original photo, uint8 [H, W, 3]."""
        if self.photo is None:
            raise ValueError("no original photo kept for this explanation")
        return overlay_on_photo(self.photo, self.plq, self.matrix, alpha)

    def figure(self):
        """A matplotlib figure: crop, PLQ map (and overlay when the photo is kept), Q̂ in the title."""
        from .figures import explanation_figure

        return explanation_figure(self)


class Explainer:
    """Configured flow. All stochastic steps draw from ``seed``.

    Args:
        backbone: registry name or a Backbone.
        quality: estimator name ("serfiq", "faceqan") or instance; None = the backbone's default.
        method: attribution method name (see ``plqa_nb.attribution``); "saliency" is the paper's PLQ.
        calibration: QualityScaling, a calibration JSON path, or None for the backbone's defaults.
        device: "cpu" or "cuda".
        norm: Eq. 3 denominator, "signed" (authors' code) or "l1" (paper text); None = the backbone's default
            (the one its default gamma was calibrated with), or the norm named in a calibration file.
        clip_grad: per-image gradient L2 clipping (None: off).
        quality_params: constructor arguments of the estimator (e.g. {"m": 20}).
    """

    max_pixels = MAX_PIXELS  # prepare refuses larger photos before decoding them (see images.load_image)

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, quality: str | QualityEstimator | None = None,
                 method: str = "saliency", calibration: QualityScaling | str | os.PathLike | None = None,
                 device: str = "cpu", seed: int = 0, norm: str | None = None, clip_grad: float | None = None,
                 quality_params: dict | None = None):
        self.device = torch.device(device)
        self.backbone = load_backbone(backbone, self.device)
        if quality is None:
            quality = self.backbone.defaults.quality
        self.estimator = get_estimator(quality, **(quality_params or {})) if isinstance(quality, str) else quality
        calibrated_norm = self.backbone.defaults.norm
        if calibration is None:
            calibration = default_scaling(self.backbone, self.estimator.name)
        elif not isinstance(calibration, QualityScaling):
            record = read_calibration(calibration)
            self.estimator.use_calibration(record)
            calibrated_norm = record.get("norm", calibrated_norm)
            calibration = QualityScaling.from_record(record, calibration)
        self.scaling = calibration
        self.method = method
        self.seed = seed
        self.norm = calibrated_norm if norm is None else norm
        self.model = QualityRegressionModel(self.backbone, clip_grad=clip_grad)

    # -- stages -------------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> PreparedFace:
        """Load, detect (largest face) and align to the backbone's crop; raises InputError subclasses."""
        source = describe(image)
        photo = load_image(image, self.max_pixels)
        detection = detect_faces(photo, source, device=str(self.device))
        aligned = align_face(photo, detection, self.backbone.crop_size, self.backbone.template)
        return PreparedFace(source, photo, detection, aligned)

    def quality(self, crops: torch.Tensor, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Q̂ [B] and raw Q [B] of crops [B, 3, S, S] (0..255)."""
        raw = self.estimator.raw(self.backbone, crops.to(self.device), seed=self.seed if seed is None else seed)
        return self.scaling(raw), raw

    def weights(self, crops: torch.Tensor, quality_hat: torch.Tensor) -> torch.Tensor:
        """Eq. 3 weights [B] for crops with qualities Q̂."""
        with torch.no_grad():
            return quality_weights(self.backbone(crops.to(self.device)), quality_hat, self.norm)

    def explain_tensor(self, crops: torch.Tensor, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Crops [B, 3, S, S] (0..255) → dict of quality, quality_raw [B], embedding [B, D],
        attribution [B, 3, S, S] (raw; |gradient| for saliency), saliency [B, S, S] (Eq. 5), plq [B, S, S] (Eq. 6).

        With the "saliency" method the trunk runs once: the estimator reuses its features,
        then one backward pass gives the map.
        """
        seed = self.seed if seed is None else seed
        x = crops.to(self.device).float().detach().requires_grad_(True)
        if self.method == "saliency":
            x_in = x if self.model.clip_grad is None else _ClipGradNorm.apply(x, self.model.clip_grad)
            with torch.enable_grad():
                feats = self.backbone.trunk(x_in)
                raw = self.estimator.raw(self.backbone, x.detach(), features=feats.detach(), seed=seed)
                q_hat = self.scaling(raw)
                emb = self.backbone.head(feats)
                w = quality_weights(emb, q_hat, self.norm)
                (grad,) = torch.autograd.grad(self.model.from_embeddings(emb, w).sum(), x)
            attr, emb = grad.abs(), emb.detach()  # |∂M_Q/∂I| as Captum's Saliency(abs=True)
        else:
            from .attribution import get_method

            q_hat, raw = self.quality(x.detach(), seed)
            with torch.no_grad():
                emb = self.backbone(x.detach())
            w = quality_weights(emb, q_hat, self.norm)
            attr = get_method(self.method).attribute(self.model, x.detach(), w, seed=seed)
        bad = ~torch.isfinite(attr.detach().flatten(1)).all(1)
        if bad.any():
            raise NumericalError(f"non-finite gradients for {int(bad.sum())} of {len(bad)} face(s); "
                                 "try clip_grad or norm='l1'")
        sal = merge_channels(attr.detach())
        return {"quality": q_hat.detach(), "quality_raw": raw.detach(), "embedding": emb,
                "attribution": attr.detach(), "saliency": sal, "plq": plq_from_saliency(sal, self.scaling.gamma)}

    def explain_prepared(self, faces: list[PreparedFace], seed: int | None = None,
                         keep_photo: bool = True) -> list[Explanation]:
        """Explain a batch of prepared faces in one pass."""
        if not faces:
            return []
        out = self.explain_tensor(crops_to_tensor([f.aligned.crop for f in faces], self.device), seed)
        cpu = {k: v.cpu().numpy() for k, v in out.items()}
        bb = getattr(self.backbone, "name", "custom")
        return [Explanation(source=f.source, crop=f.aligned.crop, plq=cpu["plq"][i].astype(np.float32),
                            saliency=cpu["saliency"][i].astype(np.float32),
                            embedding=cpu["embedding"][i].astype(np.float32), quality=float(cpu["quality"][i]),
                            quality_raw=float(cpu["quality_raw"][i]), faces_found=f.detection.faces_found,
                            matrix=f.aligned.matrix, backbone=bb, quality_method=self.estimator.name,
                            attribution=self.method, photo=f.photo if keep_photo else None)
                for i, f in enumerate(faces)]

    def explain(self, image: ImageLike, seed: int | None = None) -> Explanation:
        """One image (path, PIL image or array) → Explanation."""
        return self.explain_prepared([self.prepare(image)], seed)[0]


_EXPLAINERS: dict[tuple, Explainer] = {}


def explain(image: ImageLike, backbone: str = DEFAULT_BACKBONE, quality: str | None = None,
            method: str = "saliency", calibration: str | Path | None = None, device: str = "cpu",
            seed: int = 0) -> Explanation:
    """Explain one face with a cached Explainer; see ``Explainer`` for the arguments."""
    key = (backbone, quality, method, str(calibration), device, seed)
    if key not in _EXPLAINERS:
        _EXPLAINERS[key] = Explainer(backbone, quality, method, calibration, device, seed)
    return _EXPLAINERS[key].explain(image)
