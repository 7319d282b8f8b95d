"""Making maps of different methods comparable, and how much they agree.

Every raw attribution [B, 3, S, S] is merged over channels as Eq. 5 (``merge_channels``) for the pixel orders of
the faithfulness curves, and shown as the method shows it (``AttributionMethod.displayed``: v(·) with γ (Eq. 6)
for gradient-unit methods, a per-image usefulness rank otherwise, as ``plqa explain --method`` shows it).
``spearman_matrix`` is the Spearman rank correlation between the merged maps of one face.
``compare_methods`` runs methods and the faithfulness metrics on a batch of crops.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from ..attribution import get_method
from ..plq import merge_channels
from .faithfulness import (face_random_orders, faithfulness_curves, pixel_order, quality_infidelity,
                           quality_sensitivity)
from .road import road_curves


def spearman_matrix(maps: np.ndarray | torch.Tensor) -> np.ndarray:
    """Spearman ρ [K, K] between K merged maps [K, S, S] of one face (nan for a constant map)."""
    flat = np.asarray(maps.detach().cpu() if isinstance(maps, torch.Tensor) else maps, np.float64)
    ranks = rankdata(flat.reshape(len(flat), -1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(ranks))


@dataclass
class MethodResult:
    """One method on B faces. attribution [B, 3, S, S] (raw); saliency [B, S, S] (Eq. 5);
    view [B, S, S] in [0, 1]; deletion, insertion: Q̂ curves [B, P] and their AUCs [B];
    infidelity, sensitivity [B] or None when not computed; seconds per face: attribution,
    and total (attribution + its two curves + metrics)."""

    name: str
    attribution: torch.Tensor
    saliency: torch.Tensor
    view: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor
    infidelity: torch.Tensor | None
    sensitivity: torch.Tensor | None
    attribution_seconds: float
    seconds: float
    road_morf_auc: torch.Tensor | None = None
    road_lerf_auc: torch.Tensor | None = None


@dataclass
class Comparison:
    """Methods compared on B faces: fractions [P]; quality Q̂ [B] of the crops; the random
    baseline's median curves [B, P] and median AUCs [B] over ``n_random`` orders per face
    (see ``faithfulness``); results by method; with ROAD, the first random order's MoRF and LeRF AUCs [B]."""

    fractions: torch.Tensor
    quality: torch.Tensor
    random_deletion: torch.Tensor
    random_insertion: torch.Tensor
    random_deletion_auc: torch.Tensor
    random_insertion_auc: torch.Tensor
    methods: dict[str, MethodResult]
    random_road_morf_auc: torch.Tensor | None = None
    random_road_lerf_auc: torch.Tensor | None = None

    def beats_random(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per face, bool [B] each: method ``name``'s deletion AUC is below the median random one, and its
        insertion AUC above."""
        r = self.methods[name]
        return r.deletion_auc < self.random_deletion_auc, r.insertion_auc > self.random_insertion_auc


def compare_methods(explainer, crops: torch.Tensor, methods: Sequence[str], names: Sequence[str] | None = None,
                    steps: int = 50, step: float = 0.02, filler: str = "black", n_random: int = 5, seed: int = 0,
                    infidelity_samples: int = 10, sensitivity_samples: int = 0, chunk: int = 64,
                    road: bool = False) -> Comparison:
    """Attribute crops [B, 3, S, S] (0..255) with each method and measure faithfulness.

    Curves: ``steps`` points of ``step`` (fraction of the crop) each, see ``faithfulness_curves``; the random
    orders of each face are drawn from its name in ``names`` (default: its index in the batch).
    Q̂ of every curve point comes from ``explainer.quality(·, seed)``; the Eq. 3 weights from
    the crops' own Q̂. All curves (methods and ``n_random`` random orders) of all faces go
    through the estimator together, in chunks of ``chunk`` images. With ``road``, each method's order and the
    first random order also get ROAD's MoRF and LeRF curves (``road.road_curves``: deleted pixels imputed from
    their neighbours instead of painted over).
    """
    crops = crops.to(explainer.device).float()
    q_hat, _ = explainer.quality(crops, seed)
    weights = explainer.weights(crops, q_hat)
    attrs, att_time, extra_time = {}, {}, {}
    for name in methods:
        t0 = time.perf_counter()
        attrs[name] = explainer.attribution_method(name).attribute(explainer.model, crops, weights, seed=seed)
        att_time[name] = time.perf_counter() - t0
    sal = {name: merge_channels(a) for name, a in attrs.items()}
    metrics: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {}
    for name in methods:
        t0 = time.perf_counter()
        inf = (quality_infidelity(explainer.model, crops, weights, attrs[name], infidelity_samples, seed=seed)
               if infidelity_samples > 0 else None)
        sens = (quality_sensitivity(get_method(name), explainer.model, crops, weights, sensitivity_samples,
                                    seed=seed) if sensitivity_samples > 0 else None)
        metrics[name] = (inf, sens)
        extra_time[name] = time.perf_counter() - t0
    b = crops.shape[0]
    orders = torch.cat([pixel_order(torch.stack([sal[m] for m in methods], 1), seed),
                        face_random_orders(names or [str(i) for i in range(b)], n_random, crops[0, 0].numel(),
                                           seed).to(crops.device)], 1)
    t0 = time.perf_counter()
    curves = faithfulness_curves(crops, orders, lambda x: explainer.quality(x, seed)[0], steps, filler, step, chunk)
    curve_time = (time.perf_counter() - t0) / orders.shape[1]
    d_auc, i_auc = curves.deletion_auc, curves.insertion_auc
    k = len(methods)
    roads = road_curves(crops, orders[:, :k + 1], lambda x: explainer.quality(x, seed)[0], seed=seed, chunk=chunk) \
        if road else None
    results = {}
    for j, name in enumerate(methods):
        results[name] = MethodResult(
            name=name, attribution=attrs[name], saliency=sal[name],
            view=get_method(name).displayed(attrs[name], explainer.scaling.gamma), deletion=curves.deletion[:, j],
            insertion=curves.insertion[:, j], deletion_auc=d_auc[:, j], insertion_auc=i_auc[:, j],
            infidelity=metrics[name][0], sensitivity=metrics[name][1], attribution_seconds=att_time[name] / b,
            seconds=(att_time[name] + curve_time + extra_time[name]) / b,
            road_morf_auc=None if roads is None else roads.morf_auc[:, j],
            road_lerf_auc=None if roads is None else roads.lerf_auc[:, j])

    def median(x: torch.Tensor) -> torch.Tensor:  # over the random orders (dim 1); mean of the middle two if even
        return torch.quantile(x[:, k:], 0.5, dim=1)

    return Comparison(fractions=curves.fractions, quality=q_hat.detach(), random_deletion=median(curves.deletion),
                      random_insertion=median(curves.insertion), random_deletion_auc=median(d_auc),
                      random_insertion_auc=median(i_auc), methods=results,
                      random_road_morf_auc=None if roads is None else roads.morf_auc[:, k],
                      random_road_lerf_auc=None if roads is None else roads.lerf_auc[:, k])
