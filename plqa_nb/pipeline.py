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

from .alignment import AlignedFace, align_face
from .attribution.compliant_norm import compliant_norm_text
from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .backbones.base import crops_to_tensor
from .config import ModelConfig, resolve_config
from .detection import DEFAULT_DETECTOR, Detection, detect_faces, detector_module
from .errors import NumericalError
from .images import MAX_PIXELS, ImageLike, describe, load_image
from .plq import merge_channels, plq_from_saliency
from .regression import QualityRegressionModel, quality_weights
from .stages import (Explanation, FaceCrop, NetworkPass, PreparedFace, maps_from_pass, network_pass, prepare_face,
                     raw_quality)

T = TypeVar("T")

__all__ = ["Explainer", "Explanation", "FaceAnalysis", "PreparedFace", "cached_explainer", "crops_to_tensor",
           "explain"]


class Explainer:
    """A configured flow for batches of faces. All stochastic steps draw from the configuration's seed.

    Args:
        backbone: registry name or a Backbone.
        quality: estimator name ("ers", "serfiq", "faceqan", ...); None = the calibration's or the backbone's.
        method: attribution method name (see ``plqa_nb.attribution``); "saliency" is the paper's PLQ.
        calibration: a calibration JSON path (or its dict), or None for the backbone's defaults.
        device: "cpu" or "cuda".
        detector: the face detector of ``prepare`` ("mtcnn" or "yunet", see ``plqa_nb.detection``).
        seed, norm, clip_grad, quality_params: see ``ModelConfig``; None = the calibration's or the backbone's.
        config: a resolved ``ModelConfig`` instead of the arguments above (backbone must then be its name or
            the matching Backbone).
    """

    max_pixels = MAX_PIXELS  # prepare refuses larger photos before decoding them (see images.load_image)

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, quality: str | None = None,
                 method: str = "saliency", calibration: str | os.PathLike | Mapping | None = None,
                 device: str = "cpu", seed: int = 0, norm: str | None = None, clip_grad: float | None = None,
                 quality_params: Mapping[str, Any] | None = None, config: ModelConfig | None = None,
                 detector: str = DEFAULT_DETECTOR):
        detector_module(detector)  # ValueError for an unknown name, before anything is built
        self.detector = detector
        self.device = torch.device(device)
        self.backbone = load_backbone(config.backbone if config is not None and isinstance(backbone, str)
                                      else backbone, self.device)
        self.config = config if config is not None else resolve_config(
            self.backbone, quality, calibration, norm=norm, clip_grad=clip_grad, quality_params=quality_params,
            seed=seed)
        if self.config.backbone != self.backbone.name:
            raise ValueError(f"configuration for backbone '{self.config.backbone}' given with '{self.backbone.name}'")
        self.estimator = self.config.make_estimator()
        self.method = method
        self.model = QualityRegressionModel(
            self.backbone, clip_grad=self.config.clip_grad, estimate=self._raw_quality,
            compliant_norm=compliant_norm_text(self.backbone, self.config.compliant_norm))

    def _raw_quality(self, crops: torch.Tensor) -> torch.Tensor:
        return raw_quality(self.estimator, self.backbone, crops, None, self.seed)

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

    # -- stages -------------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> PreparedFace:
        """Load, detect (largest face) and align to the backbone's crop; raises InputError subclasses."""
        return prepare_face(image, self.backbone, self.device, self.max_pixels, self.detector)

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
        for a method whose map is not in gradient units, its per-image usefulness rank, ``_method_plq``).

        With the "saliency" method the network runs once forward and once backward (``stages``); the
        estimator reuses the trunk's features.
        """
        seed = self.seed if seed is None else seed
        x = crops.to(self.device).float().detach()
        if self.method == "saliency":
            net = network_pass(self.backbone, x)
            return maps_from_pass(net, raw_quality(self.estimator, self.backbone, x, net, seed), self.config)
        from .attribution import get_method

        net = network_pass(self.backbone, x, gradient=False)
        raw = raw_quality(self.estimator, self.backbone, x, net, seed)
        q_hat = self.scaling(raw)
        w = quality_weights(net.embedding, q_hat, self.norm)
        attr = get_method(self.method).attribute(self.model, x, w, seed=seed)
        bad = ~torch.isfinite(attr.flatten(1)).all(1)
        if bad.any():
            raise NumericalError(f"non-finite attributions for {int(bad.sum())} of {len(bad)} face(s)")
        sal = merge_channels(attr)
        return {"quality": q_hat, "quality_raw": raw, "weights": w, "embedding": net.embedding, "attribution": attr,
                "saliency": sal, "plq": self._method_plq(attr, sal)}

    def _method_plq(self, attr: torch.Tensor, sal: torch.Tensor) -> torch.Tensor:
        """PLQ [B, S, S] of another method's map: Eq. 6 for maps in gradient units (view "plq"); otherwise, per
        image, the rank of the pixel's usefulness — the opposite of its defect score (``evaluation.localization``:
        e.g. low for what the deviation map finds unusual, high for what adds quality) — scaled to [0, 1]."""
        from .attribution import get_method
        from .evaluation.comparison import rank_view
        from .evaluation.localization import defect_scores, orientation

        if get_method(self.method).view == "plq":
            return plq_from_saliency(sal, self.config.gamma)
        defect = torch.from_numpy(defect_scores(attr, orientation(self.method)))
        return rank_view(-defect).to(sal)

    def explain_prepared(self, faces: list[PreparedFace], seed: int | None = None,
                         keep_photo: bool = True) -> list[Explanation]:
        """Explain a batch of prepared faces in one pass."""
        if not faces:
            return []
        out = self.explain_tensor(crops_to_tensor([f.aligned.crop for f in faces], self.device), seed)
        cpu = {k: v.cpu().numpy() for k, v in out.items()}
        return [Explanation(source=f.source, crop=f.aligned.crop, plq=cpu["plq"][i].astype(np.float32),
                            saliency=cpu["saliency"][i].astype(np.float32),
                            embedding=cpu["embedding"][i].astype(np.float32), quality=float(cpu["quality"][i]),
                            quality_raw=float(cpu["quality_raw"][i]), faces_found=f.detection.faces_found,
                            matrix=f.aligned.matrix, backbone=self.backbone.name, quality_method=self.estimator.name,
                            attribution=self.method, photo=f.photo if keep_photo else None)
                for i, f in enumerate(faces)]

    def explain(self, image: ImageLike, seed: int | None = None) -> Explanation:
        """One image (path, PIL image or array) → Explanation."""
        return self.explain_prepared([self.prepare(image)], seed)[0]


@lru_cache(maxsize=8)
def cached_explainer(config: ModelConfig, method: str = "saliency", device: str = "cpu",
                     detector: str = DEFAULT_DETECTOR) -> Explainer:
    """An Explainer per (configuration, method, device, detector), reused: keyed by the configuration's content."""
    return Explainer(config=config, method=method, device=device, detector=detector)


def explain(image: ImageLike, backbone: str = DEFAULT_BACKBONE, quality: str | None = None,
            method: str = "saliency", calibration: str | Path | None = None, device: str = "cpu",
            seed: int = 0, detector: str = DEFAULT_DETECTOR) -> Explanation:
    """Explain one face with a cached Explainer; see ``Explainer`` for the arguments."""
    config = resolve_config(backbone, quality, calibration, seed=seed)
    return cached_explainer(config, method, device, detector).explain(image)


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
        out = {k: v[0].cpu().numpy() for k, v in self.maps(config).items()}
        aligned = self.aligned(config.backbone)
        return Explanation(source=self.name, crop=aligned.crop, plq=out["plq"].astype(np.float32),
                           saliency=out["saliency"].astype(np.float32), embedding=out["embedding"].astype(np.float32),
                           quality=float(out["quality"]), quality_raw=float(out["quality_raw"]),
                           faces_found=self.detection().faces_found, matrix=aligned.matrix,
                           backbone=config.backbone, quality_method=config.quality, attribution="saliency",
                           photo=self.photo)
