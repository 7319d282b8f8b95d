"""Calibrate Eq. 2 (alpha, r) and Eq. 6 (gamma) for a backbone and an estimator from compliant photos.

Two targets for Eq. 2, Q̂ = sigmoid(alpha (Q − r)):

* ``utility`` (the default, and the shipped defaults): Q̂ is the probability that the face is matched at the
  backbone's FMR = 1e-3 threshold. From the photos a development set is built (``devset``: every face
  clean and degraded from harmless to unusable, each compared with emulated second captures of the same
  face); alpha and r are the maximum-likelihood logistic fit of "the comparison matched" on the pair's
  quality, the lower raw Q of the two images (``fit_logistic``). An estimator trained on the same set (the
  utility head) is fitted on identity-held-out predictions, as unseen photos will get.
* ``spread`` (the previous rule): r = the mean raw Q of the photos, and alpha stretches their 5-95 % range
  to about [0.05, 0.95]; Q̂ then ranks photos but does not read as a probability.

gamma, for either target, from the compliant photos themselves: the median saliency Ŝ inside the inner
face (the central 50 % of the crop) is mapped to pixel quality 0.8 (green), i.e. 10**gamma · Ŝ² = 4,
averaged over the photos in log space. (The paper tunes gamma by eye so that the face centre is green on an
ICAO-compliant photo; this makes that rule reproducible.)
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from ..attribution.compliant_norm import fit_compliant_norm
from ..backbones.base import crops_to_tensor
from ..config import ModelConfig, estimator_state
from ..stages import FaceCrop, maps_from_pass, network_pass, raw_quality
from . import CALIBRATION_TARGETS
from .devset import DevSet

LOGIT_95 = math.log(0.95 / 0.05)
CENTRE_PLQ = 0.8


def fit_scaling(raw_qualities: np.ndarray) -> tuple[float, float]:
    """The ``spread`` target: (alpha, r) from raw qualities [N] of compliant photos."""
    q = np.asarray(raw_qualities, np.float64)
    if len(q) < 2:
        raise ValueError("calibration needs at least 2 photos with a face")
    q05, q95 = np.percentile(q, [5, 95])
    spread = max(q95 - q05, 1e-9)
    return float(2 * LOGIT_95 / spread), float(q.mean())


def fit_logistic(quality: np.ndarray, matched: np.ndarray) -> tuple[float, float]:
    """The ``utility`` target: maximum-likelihood (alpha, r) of P(matched) = sigmoid(alpha (quality − r)),
    quality [N] (raw pair qualities), matched bool [N]."""
    x, y = np.asarray(quality, np.float64), np.asarray(matched, np.float64)
    if y.min() == y.max():
        raise ValueError("the development set has only matches or only non-matches: the photos must span "
                         "good to unusable (is the degradation protocol too mild for this backbone?)")
    mu, sd = x.mean(), x.std() + 1e-12
    z = (x - mu) / sd

    def nll(p: np.ndarray) -> float:
        t = p[0] * z + p[1]
        return float(np.sum(np.logaddexp(0, t) - y * t))

    def grad(p: np.ndarray) -> np.ndarray:
        g = 1 / (1 + np.exp(-(p[0] * z + p[1]))) - y
        return np.array([np.sum(g * z), np.sum(g)])

    a, b = minimize(nll, np.array([1.0, 0.0]), jac=grad, method="BFGS").x
    return float(a / sd), float(mu - b * sd / a)


def fit_gamma(saliency_maps: np.ndarray) -> float:
    """gamma from saliency maps [N, S, S] of compliant photos (see module docstring)."""
    s = np.asarray(saliency_maps, np.float64)
    n = s.shape[-1]
    lo, hi = n // 4, n - n // 4
    centre = np.median(s[:, lo:hi, lo:hi].reshape(len(s), -1), axis=1)
    target = CENTRE_PLQ / (1 - CENTRE_PLQ)  # 10**gamma · Ŝ² at P = 0.8
    return float(np.mean(np.log10(target / np.maximum(centre, 1e-20) ** 2)))


def calibrate(explainer, faces: Sequence[FaceCrop], target: str = "utility",
              compliant: Sequence[FaceCrop] | None = None, folds: int = 5,
              batch_size: int = 16) -> tuple[ModelConfig, dict]:
    """Fit the estimator's per-backbone state (``QualityEstimator.fit``: ERS's centre, the utility head),
    (alpha, r) for ``target`` and gamma, for an Explainer's backbone, estimator and norm.

    ``faces``: clean, compliant aligned faces, one per identity (the development photos); ``compliant``: the
    photos gamma and the compliant-face norm (``attribution.compliant_norm.fit_compliant_norm``, for localising
    defects) are fitted on (default: ``faces``). Returns the calibrated configuration and the JSON-ready entries
    of the calibration file (the estimator's state and the norm; for ``utility`` also the match threshold and the
    number of development comparisons).
    """
    if target not in CALIBRATION_TARGETS:
        raise ValueError(f"target must be one of {CALIBRATION_TARGETS}, not {target!r}")
    config = explainer.config
    estimator = config.make_estimator()
    dev = DevSet(explainer.backbone, faces, seed=config.seed, device=explainer.device)
    extra = estimator.fit(explainer.backbone, dev)
    config = config.replace(estimator_state=estimator_state(config.quality, extra))
    if target == "utility":
        held_out = estimator.out_of_fold_raw(explainer.backbone, dev, folds, config.seed)
        raw_probe, raw_ref = held_out if held_out is not None else dev.raw(estimator, config.seed)
        alpha, r = fit_logistic(*dev.pairs(raw_probe, raw_ref))
        extra = {**extra, "match_threshold": dev.scores.threshold, "dev_comparisons": int(dev.scores.genuine.size)}
    else:
        raw = [raw_quality(estimator, explainer.backbone, part, None, config.seed).cpu()
               for part in _crops(faces, explainer.device).split(batch_size)]
        alpha, r = fit_scaling(torch.cat(raw).numpy())
    config = config.replace(alpha=alpha, r=r)
    sals = []
    for part in _crops(compliant or faces, explainer.device).split(batch_size):
        net = network_pass(explainer.backbone, part)
        sals.append(maps_from_pass(net, raw_quality(estimator, explainer.backbone, part, net, config.seed),
                                   config)["saliency"].cpu())
    config = config.replace(gamma=fit_gamma(torch.cat(sals).numpy()))
    norm = fit_compliant_norm(explainer.backbone, compliant or faces, explainer.device).record()
    return config.replace(compliant_norm=json.dumps(norm, sort_keys=True)), {**extra, "compliant_norm": norm}


def _crops(faces: Sequence[FaceCrop], device) -> torch.Tensor:
    return crops_to_tensor([f.crop for f in faces], device)
