"""Counterfactual: how much would the face's quality rise if this part of it looked like a compliant face?

A window (``window`` px on the paper's 112-px scale, moved by ``stride``) is replaced by the same window of
the backbone's *compliant face* (the mean aligned face of compliant photos, ``CompliantNorm``), and the
estimator's own raw quality (not its linear surrogate M_Q) is measured again: Captum's ``Occlusion`` with
that face as the baseline. Attributions are in units of the raw quality: positive where the face as it is
helps, negative where a typical face would do better. So the defect score is −attribution (orientation
"contribution"), and it answers the enrolment question directly: *which part must change*.

It costs one forward pass per window position (144 on a 150-px crop at the defaults) and is the map behind
the inpainting mask (``experiments.inpainting.defect_mask``); the paper's saliency stays the PLQ map, and the
region feedback follows the cheaper deviation map (``attribution.deviation``). It needs the estimator
(``QualityRegressionModel.estimate``, which ``Explainer`` sets) and the backbone's ``CompliantNorm`` (shipped, or
from a calibration file).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
from captum.attr import Occlusion
from torch import nn

from ..backbones.base import Backbone
from ..degradations import to_crop_px
from ..regression import QualityRegressionModel
from ..shipped import shipped_record
from .base import AttributionMethod
from .deviation import FeatureNorm, fit_feature_norm


@dataclass(frozen=True)
class CompliantNorm:
    """What compliant faces look like to a network: in its aligned crop and in its feature space.

    mean_face: uint8 [n, n, 3], the mean of compliant aligned crops at low resolution (n = 48: a blur of many
    faces, no one's face), the counterfactual's baseline; features: their ``deviation.FeatureNorm`` (the region
    feedback's norm and threshold). Neither depends on the quality estimator.
    """

    mean_face: np.ndarray
    features: FeatureNorm

    def face(self, size: int) -> torch.Tensor:
        """The mean face at the crop's size, float [3, S, S] in 0..255."""
        img = cv2.resize(self.mean_face, (size, size), interpolation=cv2.INTER_CUBIC)
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()

    def record(self) -> dict:
        """JSON-ready entries (the calibration file's "compliant_norm")."""
        return {"mean_face": self.mean_face.tolist(), "features": self.features.record()}

    @classmethod
    def from_record(cls, record: dict) -> "CompliantNorm":
        return cls(np.asarray(record["mean_face"], np.uint8), FeatureNorm.from_record(record["features"]))


def compliant_norm_text(backbone: Backbone, record: str = "") -> str:
    """The JSON text of the norm for ``backbone``: a calibration file's entry (``record``) or the one shipped for
    these weights; "" if there is none."""
    if record:
        return record
    shipped = shipped_record("norms", backbone)
    return json.dumps({k: shipped[k] for k in ("mean_face", "features")}, sort_keys=True) if shipped else ""


def compliant_norm(model: QualityRegressionModel) -> CompliantNorm:
    """The model's norm; ValueError naming ``plqa calibrate`` if it has none."""
    if not model.compliant_norm:
        raise ValueError(f"no compliant-face norm for backbone '{model.backbone.name}': run "
                         f"`plqa calibrate DEV_PHOTOS --backbone {model.backbone.name} --quality ... --out calib.json` "
                         "and pass --calibration calib.json")
    return _parsed_norm(model.compliant_norm)


@lru_cache(maxsize=8)
def _parsed_norm(text: str) -> CompliantNorm:
    """The norm of a JSON text, parsed once (every flagged row asks for it)."""
    return CompliantNorm.from_record(json.loads(text))


class _Estimate(nn.Module):
    def __init__(self, estimate):
        super().__init__()
        self.estimate = estimate

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.estimate(images)


class CounterfactualMethod(AttributionMethod):
    """Args: window and stride in px at 112 (30, 7.5), perturbations_per_eval windows per network pass (64)."""

    name = "counterfactual"
    view = "rank"
    defect_orientation = "contribution"

    def __init__(self, window: float = 30.0, stride: float = 7.5, perturbations_per_eval: int = 64):
        self.window, self.stride, self.perturbations_per_eval = window, stride, perturbations_per_eval

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if model.estimate is None:
            raise ValueError("the counterfactual method needs the quality estimator: use it through an Explainer "
                             "(or set QualityRegressionModel.estimate)")
        s = images.shape[-1]
        w, st = to_crop_px(self.window, s), to_crop_px(self.stride, s)
        baseline = compliant_norm(model).face(s).to(images)[None].expand_as(images)
        with torch.no_grad():
            return Occlusion(_Estimate(model.estimate)).attribute(
                images.detach(), sliding_window_shapes=(images.shape[1], w, w), strides=(images.shape[1], st, st),
                baselines=baseline, perturbations_per_eval=self.perturbations_per_eval)


MEAN_FACE_SIDE = 48  # px of the shipped mean face: enough for eyes, nose and mouth, too coarse for a person


def defect_maps(explainer, crops: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Counterfactual defect maps [B, S, S] (raw-quality units a typical face would add) of crops [B, 3, S, S]."""
    method = CounterfactualMethod()
    out = []
    for part in crops.split(batch_size):
        part = part.to(explainer.device)
        attr = method.attribute(explainer.model, part, explainer.weights(part, explainer.quality(part)[0]))
        out.append((-attr.mean(1)).cpu().double().numpy())
    return np.concatenate(out)


def fit_compliant_norm(backbone: Backbone, faces, device: torch.device | str = "cpu") -> CompliantNorm:
    """The ``CompliantNorm`` of a backbone from compliant aligned faces (``FaceCrop``): their mean face and their
    ``deviation.FeatureNorm``."""
    from ..backbones.base import crops_to_tensor
    from ..experiments.regions import region_masks

    crops = np.stack([f.crop for f in faces])
    mean_face = cv2.resize(crops.astype(np.float32).mean(0), (MEAN_FACE_SIDE, MEAN_FACE_SIDE),
                           interpolation=cv2.INTER_AREA).round().clip(0, 255).astype(np.uint8)
    masks = [region_masks(f.landmarks, crops.shape[1]) for f in faces]
    return CompliantNorm(mean_face, fit_feature_norm(backbone, crops_to_tensor(list(crops), device), masks))
