"""Recognisability (ERS): distance of the embedding from the "unrecognisable identity".

Deng et al. ("Harnessing Unrecognizable Faces for Improving Face Recognition", arXiv
2106.04112) observed that an FR network maps faces it cannot recognise, whatever made them
so (blur, low resolution, occlusion, bad light), into one cluster of the hypersphere. The
distance from that cluster's centre c measures how recognisable a face is:

    Q = 1 - cos(e(I), c)        (e L2-normalised; one deterministic forward pass)

The centre belongs to the backbone. ``ui_centre`` makes it from face photos destroyed in
several ways (``unrecognisable_versions``): the normalised mean of their embeddings. ``plqa calibrate``
writes it into the network's calibration bundle (the built-in networks' bundles ship with theirs).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.base import Backbone, crops_to_tensor
from ..degradations import gaussian_blur
from .base import QualityEstimator

# destructions on the paper's 112-px scale: blur sigmas (px) and down-sampling factors
UI_BLUR_SIGMAS_112 = (3.0, 6.0, 12.0)
UI_DOWNSAMPLING = (8, 16)
UI_GREY_LEVEL = 128


def unrecognisable_versions(crop: np.ndarray) -> list[np.ndarray]:
    """Versions of one aligned crop (uint8 [S, S, 3]) that no one could recognise: strong Gaussian blurs and
    down-sampling round trips. A plain grey image joins them once in ``ui_centre``."""
    s = crop.shape[0]
    out = [gaussian_blur(crop, sigma * s / 112.0) for sigma in UI_BLUR_SIGMAS_112]
    for factor in UI_DOWNSAMPLING:
        small = cv2.resize(crop, (max(2, s // factor),) * 2, interpolation=cv2.INTER_AREA)
        out.append(cv2.resize(small, (crop.shape[1], s), interpolation=cv2.INTER_LINEAR))
    return out


def _embed(backbone: Backbone, images: Sequence[np.ndarray], batch_size: int) -> torch.Tensor:
    device = next(backbone.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(backbone(crops_to_tensor(list(images[i:i + batch_size]), device)).cpu())
    return torch.cat(out)


def ui_centre(backbone: Backbone, crops: Sequence[np.ndarray], batch_size: int = 32) -> torch.Tensor:
    """The unrecognisable-identity centre [D] (unit length) of ``backbone`` from aligned face crops
    (uint8 [S, S, 3] each): each kind of destruction is averaged over the faces, then the kinds are averaged."""
    if len(crops) < 2:
        raise ValueError("the unrecognisable-identity centre needs at least 2 face crops")
    versions = [unrecognisable_versions(np.asarray(c, np.uint8)) for c in crops]
    kinds = [F.normalize(_embed(backbone, [v[k] for v in versions], batch_size).mean(0), dim=0)
             for k in range(len(versions[0]))]
    grey = np.full_like(np.asarray(crops[0], np.uint8), UI_GREY_LEVEL)
    kinds.append(_embed(backbone, [grey], 1)[0])
    return F.normalize(torch.stack(kinds).mean(0), dim=0)


def _unit(centre: Sequence[float] | torch.Tensor) -> torch.Tensor:
    return F.normalize(torch.as_tensor(centre, dtype=torch.float32), dim=0)


class Recognizability(QualityEstimator):
    """Args: centre: the unrecognisable-identity centre [D] (list or tensor); None: from a calibration bundle
    (``use_calibration``) or ``fit`` (ValueError naming ``plqa calibrate`` when used without one)."""

    name = "ers"
    calibration_keys = ("ui_centre",)

    def __init__(self, centre: Sequence[float] | torch.Tensor | None = None):
        self.centre = None if centre is None else _unit(centre)

    def centre_for(self, backbone: Backbone) -> torch.Tensor:
        """The centre used with ``backbone``."""
        centre = self.centre
        if centre is None:
            raise ValueError(f"no unrecognisable-identity centre for backbone '{backbone.name}': run "
                             f"`plqa calibrate DEV_PHOTOS --backbone {backbone.name} --quality ers --out calib.json` "
                             f"and pass --calibration calib.json")
        return centre

    def fit(self, backbone: Backbone, dev) -> dict:
        self.centre = ui_centre(backbone, [face.crop for face in dev.faces])
        return {"ui_centre": [round(float(v), 7) for v in self.centre]}

    def use_calibration(self, record: dict) -> None:
        if self.centre is None and "ui_centre" in record:
            self.centre = _unit(record["ui_centre"])

    def raw(self, backbone: Backbone, crops: torch.Tensor, features: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        with torch.no_grad():
            e = backbone(crops) if features is None else backbone.head(features.detach())
            return 1.0 - e @ self.centre_for(backbone).to(e.device, e.dtype)
