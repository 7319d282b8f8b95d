"""The whole flow, two ways over the same stages (``plqa_nb.stages``) and one ``ModelConfig``:

* ``Explainer``: a batch of faces in one pass (the CLI, the experiments, ``plqa compare``);
* ``FaceAnalysis``: one photo whose stages are cached, so that a new γ, α, r, norm or estimator costs
  no network pass (the notebooks).

``explain(image)`` is the one-call API::

    from plqa_nb import explain
    result = explain("photo.jpg")
    result.quality, result.plq, result.crop, result.figure()
"""
from __future__ import annotations

import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np
import torch

from .alignment import NEEDS_TEMPLATE, AlignedFace, align_face
from .attribution.base import AttributionMethod, missing_norm
from .attribution.compliant_norm import CompliantNorm, parse_compliant_norm
from .attribution.deviation import deviation_from_features
from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .backbones.base import crops_to_tensor
from .config import ModelConfig, check_weights, resolve_config
from .detection import ALIGNED, DEFAULT_DETECTOR, Detection, check_detector, detect_faces, detector_module
from .images import MAX_PIXELS, ImageLike, describe, load_image
from .plq import merge_channels
from .regression import QualityRegressionModel, quality_weights
from .stages import (Explanation, FaceCrop, NetworkPass, PreparedFace, explanation, maps_from_pass, network_pass,
                     prepare_face, raw_quality, require_finite, scaled_quality)

T = TypeVar("T")

__all__ = ["Explainer", "Explanation", "FaceAnalysis", "PreparedFace", "cached_explainer", "crops_to_tensor",
           "explain"]


class Explainer:
    """A configured flow for batches of faces. All stochastic steps draw from the configuration's seed.

    Args:
        backbone: registry name or a Backbone.
        quality: estimator name ("ers", "serfiq", "faceqan", ...); None = the calibration's or the backbone's.
        method: attribution method name (see ``plqa_nb.attribution``); "saliency" is the paper's PLQ.
        calibration: a calibration bundle (path, its JSON object or a ``CalibrationBundle``), or None for the
            bundle shipped for the backbone.
        device: "cpu" or "cuda".
        seed, norm, clip_grad, quality_params, detector, max_pixels: see ``ModelConfig``; None = the calibration's
            or the backbone's.
        config: a resolved ``ModelConfig`` instead of the arguments above (backbone must then be its name or
            the matching Backbone).
    """

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, quality: str | None = None,
                 method: str = "saliency", calibration: str | os.PathLike | Mapping | None = None,
                 device: str = "cpu", seed: int = 0, norm: str | None = None, clip_grad: float | None = None,
                 quality_params: Mapping[str, Any] | None = None, config: ModelConfig | None = None,
                 detector: str = DEFAULT_DETECTOR, max_pixels: int = MAX_PIXELS):
        check_detector(detector)  # ValueError for an unknown name, before anything is built
        self.device = torch.device(device)
        self.backbone = load_backbone(config.backbone if config is not None and isinstance(backbone, str)
                                      else backbone, self.device)
        self.config = config if config is not None else resolve_config(
            self.backbone, quality, calibration, norm=norm, clip_grad=clip_grad, quality_params=quality_params,
            seed=seed, detector=detector, max_pixels=max_pixels)
        if self.config.detector == ALIGNED and self.backbone.template is None:
            raise ValueError(f"{self.backbone.name}: {NEEDS_TEMPLATE}")
        if self.config.backbone != self.backbone.name:
            raise ValueError(f"configuration for backbone '{self.config.backbone}' given with '{self.backbone.name}'")
        check_weights(self.config, self.backbone)
        self.estimator = self.config.make_estimator()
        self.method = method
        self.model = QualityRegressionModel(self.backbone, clip_grad=self.config.clip_grad,
                                            estimate=self._raw_quality)

    def _raw_quality(self, crops: torch.Tensor) -> torch.Tensor:
        return raw_quality(self.estimator, self.backbone, crops, None, self.seed)

    @property
    def has_compliant_norm(self) -> bool:
        """Whether the configuration's calibration has a compliant-face norm (for the defect maps and the flag)."""
        return bool(self.config.compliant_norm)

    def compliant_norm(self) -> CompliantNorm:
        """The calibration's compliant-face norm; ValueError naming ``plqa calibrate`` when it has none."""
        if not self.config.compliant_norm:
            raise missing_norm(self.backbone.name)
        return parse_compliant_norm(self.config.compliant_norm)

    def attribution_method(self, name: str, **params) -> AttributionMethod:
        """``attribution.get_method(name, **params)``, with this configuration's compliant-face norm handed to the
        methods that compare a face with it (the deviation and counterfactual maps)."""
        from .attribution import get_method

        method = get_method(name, **params)
        if method.uses_compliant_norm and method.compliant_norm is None and self.has_compliant_norm:
            method.compliant_norm = self.compliant_norm()
        return method

    @property
    def scaling(self):
        """Eq. 2 and Eq. 6 parameters of the configuration."""
        return self.config.scaling()

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def norm(self) -> str:
        return self.config.norm

    @property
    def reentrant(self) -> bool:
        """True where ``explain_tensor`` and ``quality`` may run on several threads at once: the backbone keeps no
        state in its modules (``Backbone.reentrant``) and the method is the paper's saliency. The estimators draw
        from generators of their own; other attribution methods may hook modules or seed torch's global
        generator."""
        return self.backbone.reentrant and self.method == "saliency"

    # -- stages -------------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> PreparedFace:
        """Load, detect (largest face) and align to the backbone's crop; raises InputError subclasses."""
        return prepare_face(image, self.backbone, self.device, self.config.max_pixels, self.config.detector)

    def quality(self, crops: torch.Tensor, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Q̂ [B] and raw Q [B] of crops [B, 3, S, S] (0..255)."""
        raw = raw_quality(self.estimator, self.backbone, crops.to(self.device), None,
                          self.seed if seed is None else seed)
        return self.scaling(raw), raw

    def weights(self, crops: torch.Tensor, quality_hat: torch.Tensor) -> torch.Tensor:
        """Eq. 3 weights [B] for crops with qualities Q̂."""
        with torch.no_grad():
            return quality_weights(self.backbone(crops.to(self.device)), quality_hat, self.norm)

    def explain_tensor(self, crops: torch.Tensor, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Crops [B, 3, S, S] (0..255) → dict of quality, quality_raw, weights [B], embedding [B, D],
        attribution [B, 3, S, S] (raw; |gradient| for saliency), saliency [B, S, S] (Eq. 5), plq [B, S, S] (Eq. 6;
        for a method whose map is not in gradient units, its per-image usefulness rank, ``AttributionMethod.displayed``)
        and, where the configuration has a compliant-face norm, deviation [B, S, S] (``attribution.deviation``).

        With the "saliency" method the network runs once forward and once backward (``stages``); the
        estimator reuses the trunk's features, and the deviation map the feature maps of the same pass.
        """
        seed = self.seed if seed is None else seed
        x = crops.to(self.device).float().detach()
        norm = self.compliant_norm().features if self.has_compliant_norm else None
        net = network_pass(self.backbone, x, gradient=self.method == "saliency", taps=norm.taps if norm else ())
        raw = raw_quality(self.estimator, self.backbone, x, net, seed)
        if self.method == "saliency":
            out = maps_from_pass(net, raw, self.config)
        else:
            q_hat, w = scaled_quality(net.embedding, raw, self.config)
            method = self.attribution_method(self.method)
            attr = method.attribute(self.model, x, w, seed=seed)
            require_finite(attr)
            out = {"quality": q_hat, "quality_raw": raw, "weights": w, "embedding": net.embedding,
                   "attribution": attr, "saliency": merge_channels(attr),
                   "plq": method.displayed(attr, self.config.gamma)}
        if norm is not None:
            out["deviation"] = deviation_from_features(list(net.tapped), norm, x.shape[-1])
        return out

    def explain_prepared(self, faces: list[PreparedFace], seed: int | None = None,
                         keep_photo: bool = True) -> list[Explanation]:
        """Explain a batch of prepared faces in one pass."""
        if not faces:
            return []
        out = self.explain_tensor(crops_to_tensor([f.aligned.crop for f in faces], self.device), seed)
        return [explanation(f.source, f.aligned, out, i, f.detection.faces_found, self.backbone.name,
                            self.estimator.name, self.method, f.photo if keep_photo else None)
                for i, f in enumerate(faces)]

    def explain(self, image: ImageLike, seed: int | None = None) -> Explanation:
        """One image (path, PIL image or array) → Explanation."""
        return self.explain_prepared([self.prepare(image)], seed)[0]


@lru_cache(maxsize=8)
def cached_explainer(config: ModelConfig, method: str = "saliency", device: str = "cpu") -> Explainer:
    """An Explainer per (configuration, method, device), reused: keyed by the configuration's content."""
    return Explainer(config=config, method=method, device=device)


def explain(image: ImageLike, backbone: str = DEFAULT_BACKBONE, quality: str | None = None,
            method: str = "saliency", calibration: str | Path | None = None, device: str = "cpu",
            seed: int = 0, detector: str = DEFAULT_DETECTOR) -> Explanation:
    """Explain one face with a cached Explainer; see ``Explainer`` for the arguments."""
    config = resolve_config(backbone, quality, calibration, seed=seed, detector=detector)
    return cached_explainer(config, method, device).explain(image)


class FaceAnalysis:
    """One photo and its stages, each computed once per what it depends on (the notebooks' engine).

    detection: once, with ``detector`` (one analysis per photo and detector); alignment and the network pass
    (features, embedding, gradient of the unit model): per backbone; raw quality: per backbone, estimator, its arguments, state and seed. ``explain(config)``
    is then arithmetic (``stages.maps_from_pass``). ``computed`` counts the runs of each stage.
    """

    def __init__(self, image: ImageLike, name: str | None = None, device: str = "cpu",
                 detector: str = DEFAULT_DETECTOR):
        detector_module(detector)  # ValueError for an unknown name
        self.detector = detector
        self.name = name or "/".join(Path(describe(image)).parts[-2:])
        self.photo = load_image(image)
        self.device = torch.device(device)
        self.computed: Counter[str] = Counter()
        self._cache: dict[tuple, Any] = {}

    def memo(self, stage: str, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()`` once per (stage, key) for this face; counted in ``computed[stage]``."""
        k = (stage,) + key
        if k not in self._cache:
            self._cache[k] = compute()
            self.computed[stage] += 1
        return self._cache[k]

    def backbone(self, name: str) -> Backbone:
        return load_backbone(name, self.device)

    def detection(self) -> Detection:
        """The largest face of the photo (found by ``self.detector``)."""
        return self.memo("detection", (self.detector,),
                         lambda: detect_faces(self.photo, self.name, str(self.device), self.detector))

    def aligned(self, backbone: str) -> AlignedFace:
        """The face aligned to ``backbone``'s crop."""
        bb = self.backbone(backbone)
        return self.memo("alignment", (backbone,),
                         lambda: align_face(self.photo, self.detection(), bb.crop_size, bb.template))

    def face_crop(self, backbone: str) -> FaceCrop:
        """The aligned face as the experiments take it: (name, crop, landmarks in crop px)."""
        aligned = self.aligned(backbone)
        return FaceCrop(self.name, aligned.crop, np.asarray(aligned.landmarks, np.float64))

    def crops(self, backbone: str) -> torch.Tensor:
        """The aligned crop as a float tensor [1, 3, S, S] in 0..255."""
        return crops_to_tensor([self.aligned(backbone).crop], self.device)

    def network(self, backbone: str) -> NetworkPass:
        """Trunk features, embedding and the unit model's gradient: one forward and one backward pass."""
        return self.memo("network", (backbone,), lambda: network_pass(self.backbone(backbone), self.crops(backbone)))

    def raw_quality(self, config: ModelConfig) -> float:
        """The estimator's raw Q (before Eq. 2) under ``config``."""
        key = (config.backbone, config.quality, config.quality_params, config.estimator_state, config.seed)
        return self.memo("quality", key, lambda: float(raw_quality(
            config.make_estimator(), self.backbone(config.backbone), self.crops(config.backbone),
            self.network(config.backbone), config.seed)[0]))

    def maps(self, config: ModelConfig) -> dict[str, torch.Tensor]:
        """``stages.maps_from_pass`` of this face under ``config`` (arithmetic on the cached stages)."""
        raw = torch.tensor([self.raw_quality(config)], device=self.device)
        return maps_from_pass(self.network(config.backbone), raw, config)

    def weight(self, config: ModelConfig) -> float:
        """The Eq. 3 weight w = Q̂ / Σe (or Q̂ / ‖e‖₁)."""
        return float(self.maps(config)["weights"][0])

    def explain(self, config: ModelConfig) -> Explanation:
        """The explanation under ``config`` (the paper's saliency map)."""
        return explanation(self.name, self.aligned(config.backbone), self.maps(config), 0,
                           self.detection().faces_found, config.backbone, config.quality, "saliency", self.photo)
