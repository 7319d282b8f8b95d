"""Occlusion (Captum): Q̂ drop when a square window is replaced by the image's reference.

Window and stride are given on the paper's 112-px scale (scaled to the crop); the
filler is black by default (as the paper's black squares). Attributions are in units of
Q̂ (positive where hiding the pixel lowers Q̂): shown rank-normalised.
About ``images_per_pass`` windowed copies, of all the batch's images, go through the network per pass.
"""
from __future__ import annotations

import torch
from captum.attr import Occlusion

from ..degradations import to_crop_px
from ..regression import QualityRegressionModel
from .base import IMAGES_PER_PASS, AttributionMethod, windows_per_pass
from .baselines import reference_images


class OcclusionMethod(AttributionMethod):
    """Args: window and stride in px at 112 (20, 10), filler ("black" | "blur" | "mean"),
    images_per_pass (``IMAGES_PER_PASS``)."""

    name = "occlusion"
    view = "rank"
    defect_orientation = "contribution"

    def __init__(self, window: float = 20.0, stride: float = 10.0, filler: str = "black",
                 images_per_pass: int = IMAGES_PER_PASS):
        self.window, self.stride, self.filler = window, stride, filler
        self.images_per_pass = images_per_pass

    def compute(self, model: QualityRegressionModel, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s = images.shape[-1]
        w, st = to_crop_px(self.window, s), to_crop_px(self.stride, s)
        return Occlusion(model).attribute(
            images, sliding_window_shapes=(images.shape[1], w, w), strides=(images.shape[1], st, st),
            baselines=reference_images(images, self.filler), additional_forward_args=(weights,),
            perturbations_per_eval=windows_per_pass(images, self.images_per_pass))
