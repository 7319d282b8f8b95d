"""Counterfactual: how much would the face's quality rise if this part of it looked like a compliant face?

A window (``window`` px on the paper's 112-px scale, moved by ``stride``) is replaced by the same window of
the backbone's *compliant face* (the mean aligned face of compliant photos, ``compliant_norm.CompliantNorm``), and the
estimator's own raw quality (not its linear surrogate M_Q) is measured again: Captum's ``Occlusion`` with
that face as the baseline. Attributions are in units of the raw quality: positive where the face as it is
helps, negative where a typical face would do better. So the defect score is −attribution (orientation
"contribution"), and it answers the enrolment question directly: *which part must change*.

It costs one forward pass per window position (144 on a 150-px crop at the defaults) and is the map behind
the inpainting mask (``experiments.inpainting.explanation_mask``); the paper's saliency stays the PLQ map, and the
region feedback follows the cheaper deviation map (``attribution.deviation``). It needs the estimator
(``QualityRegressionModel.estimate``, which ``Explainer`` sets) and the backbone's ``CompliantNorm`` (shipped, or
from a calibration file).
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import Occlusion
from torch import nn

from ..degradations import to_crop_px
from ..regression import QualityRegressionModel
from .base import IMAGES_PER_PASS, AttributionMethod, missing_norm, windows_per_pass
from .compliant_norm import CompliantNorm


class _Estimate(nn.Module):
    def __init__(self, estimate):
        super().__init__()
        self.estimate = estimate

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.estimate(images)


class CounterfactualMethod(AttributionMethod):
    """Args: window and stride in px at 112 (30, 7.5), images_per_pass windowed copies per network pass
    (``IMAGES_PER_PASS``, shared between the images of the batch: ``windows_per_pass``),
    compliant_norm: the network's norm, whose mean face fills the window (an ``Explainer`` hands over its
    calibration's)."""

    name = "counterfactual"
    view = "rank"
    defect_orientation = "contribution"
    uses_compliant_norm = True

    def __init__(self, window: float = 30.0, stride: float = 7.5, images_per_pass: int = IMAGES_PER_PASS,
                 compliant_norm: CompliantNorm | None = None):
        self.window, self.stride, self.images_per_pass = window, stride, images_per_pass
        self.compliant_norm = compliant_norm

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if model.estimate is None:
            raise ValueError("the counterfactual method needs the quality estimator: use it through an Explainer "
                             "(or set QualityRegressionModel.estimate)")
        if self.compliant_norm is None:
            raise missing_norm(model.backbone.name)
        s = images.shape[-1]
        w, st = to_crop_px(self.window, s), to_crop_px(self.stride, s)
        baseline = self.compliant_norm.face(s).to(images)[None].expand_as(images)
        with torch.no_grad():
            return Occlusion(_Estimate(model.estimate)).attribute(
                images.detach(), sliding_window_shapes=(images.shape[1], w, w), strides=(images.shape[1], st, st),
                baselines=baseline, perturbations_per_eval=windows_per_pass(images, self.images_per_pass))


def defect_maps(explainer, crops: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Counterfactual defect maps [B, S, S] (raw-quality units a typical face would add) of crops [B, 3, S, S]."""
    method = explainer.attribution_method("counterfactual")
    out = []
    for part in crops.split(batch_size):
        part = part.to(explainer.device)
        attr = method.attribute(explainer.model, part, explainer.weights(part, explainer.quality(part)[0]))
        out.append((-attr.mean(1)).cpu().double().numpy())
    return np.concatenate(out)
