"""Utility: a linear head on the network's own features that predicts how well a face will be matched.

ISO/IEC 29794-1 defines face image quality as utility for recognition. This estimator learns it for a
backbone from its development set (``devset``): for every probe (a clean or degraded face) the label is
its mean cosine similarity to emulated second captures of the same person, and a linear head on

    z = [f, e, log ‖d‖, h, s]    (f: the trunk's features, d = head_layers(f) the raw descriptor, e = d / ‖d‖;
                                   h, s: the crop's share of highlights and shadows, ``exposure_measures``)

predicts it: Q = z · w + b, an estimate of the genuine similarity the face will reach (in the spirit of
SDD-FIQA and CR-FIQA, which also learn quality from genuine and impostor similarities, here with the
backbone frozen). The fit (``fit_head``) is a ridge regression plus a ranking term, as in learning-to-rank
quality (Chen et al., IEEE SPL 2015): each face's degradations of one kind, mild to severe, must score in that
order. The similarity labels alone are too noisy to teach that a slightly brighter or colder photo is worse
(it costs the network ~0.001 of similarity), and without the ranking term the head rose for such changes.
The network's features alone still leaned towards brighter photos (half a stop more light raised Q̂ for most
faces, though it lowers the similarity for two in three); h and s, soft versions of the over- and under-exposure
measures of ISO/IEC 29794-5, give the head a direct view of clipped light. It costs a dot product on features the
map computes anyway, and two means over the crop. With the utility calibration
(``calibration.calibrate``) Q̂ = sigmoid(α (Q − r)) is the estimated probability of a match at the backbone's
FMR = 1e-3 threshold, and r sits near that threshold.

A head is fitted by ``plqa calibrate`` into the network's calibration bundle (``config``); the bundles
shipped for the built-in networks carry theirs, and ``ModelConfig.make_estimator`` hands it over.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..backbones.base import Backbone
from .base import QualityEstimator

# chosen, before the exposure measures joined z, by leave-one-kind-out on the development set (London smiling): hold
# out one degradation kind, fit on the others, and ask whether the held-out kind's median prediction falls with
# strength (11 of 12 kinds; the plain ridge head with λ 0.03 that this replaced: 7), at an identity-held-out rank
# correlation with the labels no lower than that head's (0.817 against 0.815)
RIDGE = 1e-3  # λ on standardised inputs
RANK_WEIGHT = 300.0  # weight of the ranking term against the squared error
RANK_MARGIN = 0.05  # the smallest step between two ordered probes, in standard deviations of the labels
# exposure measures: luminance (0..1) above which a pixel counts as highlight, below which as shadow, and the width of
# the soft step. Chosen on the development set with the head's other settings: leave-one-kind-out 11 of 12 kinds
# (without these inputs, in the same run: 10), identity-held-out ρ 0.829 (0.817), and a third of a stop more light
# lowers the Q̂ of held-out identities for 84 % of them (37 %) (scripts/select_utility_inputs.py). Highlight levels
# 0.9-0.97 and softness 0.02-0.05 kept 11 of 12 kinds, 0.9 lowered Q̂ under small lightening most often, 0.85 lost
# a kind
HIGHLIGHT, SHADOW, SOFTNESS = 0.9, 0.1, 0.03


def exposure_measures(crops: torch.Tensor) -> torch.Tensor:
    """[h, s] [B, 2] of crops [B, 3, S, S] (0..255): the mean of softness·softplus((Y − HIGHLIGHT) / softness) and of
    softness·softplus((SHADOW − Y) / softness) over the crop's luminance Y (Rec. 601, 0..1). Soft counts of the
    bright and dark pixels, as in the over- and under-exposure prevention measures of ISO/IEC 29794-5, that a
    small change of light moves."""
    luma = torch.tensor([0.299, 0.587, 0.114], device=crops.device) / 255
    y = torch.einsum("c,bchw->bhw", luma, crops.float())
    soft = torch.nn.functional.softplus
    return torch.stack([soft((y - HIGHLIGHT) / SOFTNESS).mean((1, 2)),
                        soft((SHADOW - y) / SOFTNESS).mean((1, 2))], 1) * SOFTNESS


def head_inputs(backbone: Backbone, features: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """z = [f, e, log ‖d‖, h, s] [B, F' + D + 3] from trunk features [B, F] (f: ``Backbone.head_features`` of them,
    F' numbers) and ``exposure_measures`` [B, 2]."""
    d = backbone.head_layers(features)
    n = d.norm(dim=1, keepdim=True)
    return torch.cat([backbone.head_features(features), d / n, torch.log(n), exposure.to(features)], 1)


def fit_head(z: np.ndarray, y: np.ndarray, better: np.ndarray = (), worse: np.ndarray = (), ridge: float = RIDGE,
             rank_weight: float = RANK_WEIGHT, margin: float = RANK_MARGIN) -> tuple[np.ndarray, float]:
    """The linear map (w [K], b) of z [N, K] that minimises, on standardised z,

        mean (q − y)² + ridge ‖w‖² + rank_weight · mean_k max(0, margin σ_y − q[better_k] + q[worse_k])²

    (q = z w + b [N]; better, worse: row indices of ordered pairs). Without pairs it is ridge regression. The
    squared hinge makes the problem piecewise quadratic: each Newton step solves it on the pairs that violate
    the margin, until that set stops changing (Chapelle, "Training a support vector machine in the primal", 2007).
    """
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    mu, sd = z.mean(0), z.std(0) + 1e-6
    x = np.concatenate([(z - mu) / sd, np.ones((len(z), 1))], 1)
    reg = ridge * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # the bias is not shrunk
    lhs, rhs = x.T @ x / len(x) + reg, x.T @ y / len(x)
    theta = np.linalg.solve(lhs, rhs)
    diff = x[np.asarray(better, int)] - x[np.asarray(worse, int)]
    if len(diff):
        step, c, active = margin * y.std(), rank_weight / len(diff), None
        for _ in range(100):
            violated = diff @ theta < step
            if active is not None and np.array_equal(violated, active):
                break
            active, d = violated, diff[violated]
            theta = np.linalg.solve(lhs + c * d.T @ d, rhs + c * step * d.sum(0))
    w = theta[:-1] / sd
    return w, float(theta[-1] - mu @ w)


def fit_head_on(z: np.ndarray, y: np.ndarray, keep: np.ndarray, better: np.ndarray, worse: np.ndarray,
                **settings) -> tuple[np.ndarray, float]:
    """``fit_head`` on the rows of z [N, K] and y [N] where keep [N] (bool) is set, with the ordered pairs (row
    indices into all N) whose two probes are both kept; settings: ridge, rank_weight, margin."""
    rows = np.cumsum(keep) - 1  # index of each kept row among the kept rows
    kept = keep[better] & keep[worse]
    return fit_head(z[keep], y[keep], rows[better[kept]], rows[worse[kept]], **settings)


def dev_inputs(backbone: Backbone, features: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """``head_inputs`` [N, K] (float64) of stored trunk features [N, F] and exposure measures [N, 2]."""
    device = next(backbone.parameters()).device
    with torch.no_grad():
        f = torch.as_tensor(features, dtype=torch.float32, device=device)
        return head_inputs(backbone, f, torch.as_tensor(exposure, device=device)).double().cpu().numpy()


def identity_folds(n_faces: int, folds: int, seed: int) -> list[np.ndarray]:
    """Face indices split into ``folds`` seeded groups (identity-disjoint cross-validation)."""
    order = np.random.default_rng(seed).permutation(n_faces)
    return [np.sort(order[k::folds]) for k in range(folds)]


class UtilityHead(QualityEstimator):
    """Args: weights [F' + D + 3] and bias of the head (None: from a calibration bundle, ``use_calibration``, or
    trained by ``fit``); ridge, rank_weight, margin: used by ``fit`` (``fit_head``)."""

    name = "utility"
    calibration_keys = ("head_weights", "head_bias")

    def __init__(self, weights: Sequence[float] | None = None, bias: float | None = None, ridge: float = RIDGE,
                 rank_weight: float = RANK_WEIGHT, margin: float = RANK_MARGIN):
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.bias = None if bias is None else float(bias)
        self.ridge, self.rank_weight, self.margin = ridge, rank_weight, margin

    def head_for(self, backbone: Backbone) -> tuple[torch.Tensor, float]:
        """(weights, bias) used with ``backbone``."""
        if self.weights is None:
            raise ValueError(f"no utility head for backbone '{backbone.name}': run `plqa calibrate DEV_PHOTOS "
                             f"--backbone {backbone.name} --quality utility --out calib.json` and pass "
                             f"--calibration calib.json")
        return self.weights, self.bias

    def use_calibration(self, record: dict) -> None:
        if self.weights is None and "head_weights" in record:
            self.weights = torch.as_tensor(record["head_weights"], dtype=torch.float64)
            self.bias = float(record["head_bias"])

    def raw(self, backbone: Backbone, crops: torch.Tensor, features: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        w, b = self.head_for(backbone)
        with torch.no_grad():
            f = backbone.trunk(crops) if features is None else features.detach()
            z = head_inputs(backbone, f, exposure_measures(crops))
            if len(w) != z.shape[1]:
                raise ValueError(f"the utility head has {len(w)} weights, but its inputs for '{backbone.name}' have "
                                 f"{z.shape[1]} (a head made by an older version?): run `plqa calibrate DEV_PHOTOS "
                                 f"--backbone {backbone.name} --quality utility` again")
            return (z.double() @ w.to(z.device) + b).to(f.dtype)

    def fit(self, backbone: Backbone, dev) -> dict:
        s = dev.scores
        better, worse = s.ordered_pairs
        w, b = fit_head(dev_inputs(backbone, s.probe_features, s.probe_exposure), s.labels, better, worse,
                        self.ridge, self.rank_weight, self.margin)
        self.weights, self.bias = torch.from_numpy(w), b
        return {"head_weights": [float(v) for v in w], "head_bias": b}

    def out_of_fold_raw(self, backbone: Backbone, dev, folds: int = 5, seed: int = 0):
        s = dev.scores
        z_probe = dev_inputs(backbone, s.probe_features, s.probe_exposure)
        z_ref = dev_inputs(backbone, s.reference_features, s.reference_exposure)
        ref_face = np.repeat(np.arange(len(dev.faces)), len(s.reference_features) // len(dev.faces))
        better, worse = s.ordered_pairs
        raw_probe, raw_ref = np.empty(len(z_probe)), np.empty(len(z_ref))
        for held in identity_folds(len(dev.faces), folds, seed):
            out_p, out_r = np.isin(s.probe_face, held), np.isin(ref_face, held)
            w, b = fit_head_on(z_probe, s.labels, ~out_p, better, worse, ridge=self.ridge,
                               rank_weight=self.rank_weight, margin=self.margin)
            raw_probe[out_p], raw_ref[out_r] = z_probe[out_p] @ w + b, z_ref[out_r] @ w + b
        return raw_probe, raw_ref
