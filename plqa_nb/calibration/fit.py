"""Fit a network's calibration bundle from compliant photos: per estimator its state, Eq. 2 (alpha, r) and Eq. 6
(gamma), and the network's compliant-face norm (``calibrate_bundle``, what ``plqa calibrate`` runs).

Two targets for Eq. 2, Q̂ = sigmoid(alpha (Q − r)):

* ``utility`` (the default, and the shipped bundles): Q̂ is the probability that the face is matched at the
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

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from ..attribution.compliant_norm import fit_compliant_norm
from ..backbones.base import Backbone, crops_to_tensor
from ..config import CalibrationBundle, EstimatorCalibration, ModelConfig
from ..stages import FaceCrop, maps_from_pass, network_pass, raw_quality
from . import TARGETS
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


def calibrate_estimator(backbone: Backbone, config: ModelConfig, dev: DevSet, target: str = "utility",
                        compliant: Sequence[FaceCrop] | None = None, folds: int = 5,
                        batch_size: int = 16) -> tuple[EstimatorCalibration, dict]:
    """One estimator's calibration for ``backbone``: its state (``QualityEstimator.fit`` on the development set:
    ERS's centre, the utility head), (alpha, r) for ``target`` and gamma (from ``compliant`` faces, default the
    development faces). ``config`` names the estimator, its arguments, the norm and the seed. Returns the
    calibration and, for ``utility``, the development set's facts (match threshold, number of comparisons)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    estimator = config.make_estimator()
    state = estimator.fit(backbone, dev)
    facts = {}
    if target == "utility":
        held_out = estimator.out_of_fold_raw(backbone, dev, folds, config.seed)
        raw_probe, raw_ref = held_out if held_out is not None else dev.raw(estimator, config.seed)
        alpha, r = fit_logistic(*dev.pairs(raw_probe, raw_ref))
        facts = {"match_threshold": dev.scores.threshold, "dev_comparisons": int(dev.scores.genuine.size)}
    else:
        raw = [raw_quality(estimator, backbone, part, None, config.seed).cpu()
               for part in _crops(dev.faces, dev.device).split(batch_size)]
        alpha, r = fit_scaling(torch.cat(raw).numpy())
    scaled = config.replace(alpha=alpha, r=r)
    sals = []
    for part in _crops(compliant or dev.faces, dev.device).split(batch_size):
        net = network_pass(backbone, part)
        sals.append(maps_from_pass(net, raw_quality(estimator, backbone, part, net, config.seed),
                                   scaled)["saliency"].cpu())
    gamma = fit_gamma(torch.cat(sals).numpy())
    return EstimatorCalibration(alpha, r, gamma, state, photos=len(dev.faces)), facts


def calibrate_bundle(backbone: Backbone, faces: Sequence[FaceCrop], estimators: Mapping[str, int | None],
                     default_estimator: str, norm: str, target: str = "utility",
                     compliant: Sequence[FaceCrop] | None = None, folds: int = 5, seed: int = 0,
                     device: str | torch.device = "cpu", made_with: str = "",
                     progress=None) -> CalibrationBundle:
    """The calibration bundle of ``backbone`` from development ``faces`` (clean, compliant, one per identity).

    estimators: name → how many of the first faces it is fitted on (None: all; FaceQAN is slow); default_estimator:
    the bundle's default; norm: the Eq. 3 denominator the maps are calibrated for; compliant: the faces gamma and the
    compliant-face norm are fitted on (default: ``faces``); progress: called with (estimator name, calibration) as
    each one is done. Development sets are shared by the estimators that use the same faces.
    """
    if default_estimator not in estimators:
        raise ValueError(f"the default estimator '{default_estimator}' is not among those calibrated "
                         f"({', '.join(estimators)})")
    devs: dict[int, DevSet] = {}
    fitted: dict[str, EstimatorCalibration] = {}
    facts: dict = {}
    for name, limit in estimators.items():
        subset = list(faces[:limit]) if limit else list(faces)
        if len(subset) not in devs:
            devs[len(subset)] = DevSet(backbone, subset, seed=seed, device=device)
        config = ModelConfig(backbone=backbone.name, crop_size=backbone.crop_size, quality=name, norm=norm, seed=seed)
        fitted[name], est_facts = calibrate_estimator(backbone, config, devs[len(subset)], target, compliant, folds)
        if limit is None or not facts:
            facts = est_facts or facts
        if progress is not None:
            progress(name, fitted[name])
    norm_record = fit_compliant_norm(backbone, compliant or faces, device).record()
    return CalibrationBundle(backbone=backbone.name, norm=norm, default_estimator=default_estimator,
                             estimators=fitted, weights_sha1=backbone.fingerprint(), compliant_norm=norm_record,
                             made_with=made_with, photos=len(faces), seed=seed,
                             match_threshold=facts.get("match_threshold"),
                             dev_comparisons=facts.get("dev_comparisons", 0))


def _crops(faces: Sequence[FaceCrop], device) -> torch.Tensor:
    return crops_to_tensor([f.crop for f in faces], device)
