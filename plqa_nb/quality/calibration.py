"""Calibrate Eq. 2 (alpha, r) and Eq. 6 (gamma) for a backbone from photos.

* r = mean raw quality of a development set; alpha stretches its 5-95 % range to about
  [0.05, 0.95]: alpha = 2·logit(0.95) / (q95 - q05).
* gamma from compliant photos: the median saliency Ŝ inside the inner face (the central
  50 % of the crop) is mapped to pixel quality 0.8 (green), i.e. 10**gamma · Ŝ² = 4,
  averaged over the photos in log space. (The paper tunes gamma by eye so that the face
  centre is green on an ICAO-compliant photo; this makes that rule reproducible.)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..config import ModelConfig, estimator_state

LOGIT_95 = math.log(0.95 / 0.05)
CENTRE_PLQ = 0.8


def fit_scaling(raw_qualities: np.ndarray) -> tuple[float, float]:
    """(alpha, r) from raw qualities [N] of a development set."""
    q = np.asarray(raw_qualities, np.float64)
    if len(q) < 2:
        raise ValueError("calibration needs at least 2 photos with a face")
    q05, q95 = np.percentile(q, [5, 95])
    spread = max(q95 - q05, 1e-9)
    return float(2 * LOGIT_95 / spread), float(q.mean())


def fit_gamma(saliency_maps: np.ndarray) -> float:
    """gamma from saliency maps [N, S, S] of compliant photos (see module docstring)."""
    s = np.asarray(saliency_maps, np.float64)
    n = s.shape[-1]
    lo, hi = n // 4, n - n // 4
    centre = np.median(s[:, lo:hi, lo:hi].reshape(len(s), -1), axis=1)
    target = CENTRE_PLQ / (1 - CENTRE_PLQ)  # 10**gamma · Ŝ² at P = 0.8
    return float(np.mean(np.log10(target / np.maximum(centre, 1e-20) ** 2)))


def calibrate(explainer, crops: torch.Tensor, compliant_crops: torch.Tensor | None = None,
              batch_size: int = 16) -> tuple[ModelConfig, dict]:
    """Fit (alpha, r, gamma) for an Explainer's backbone, estimator and norm; crops [N, 3, S, S] 0..255.

    The estimator first fits its own per-backbone state (``QualityEstimator.fit``, e.g. ERS's centre).
    Returns the calibrated configuration and the estimator's entries for the calibration file.
    """
    from ..stages import maps_from_pass, network_pass, raw_quality

    estimator = explainer.config.make_estimator()
    extra = estimator.fit(explainer.backbone, crops)
    config = explainer.config.replace(estimator_state=estimator_state(explainer.config.quality, extra))

    def passes(images: torch.Tensor, gradient: bool = True):
        for part in images.split(batch_size):
            part = part.to(explainer.device)
            net = network_pass(explainer.backbone, part, gradient)
            yield net, raw_quality(estimator, explainer.backbone, part, net, config.seed)

    alpha, r = fit_scaling(torch.cat([raw.cpu() for _, raw in passes(crops, gradient=False)]).numpy())
    config = config.replace(alpha=alpha, r=r)
    sals = [maps_from_pass(net, raw, config)["saliency"].cpu()
            for net, raw in passes(crops if compliant_crops is None else compliant_crops)]
    return config.replace(gamma=fit_gamma(torch.cat(sals).numpy())), extra

