"""Face verification metrics for checking a backbone: genuine vs impostor scores, ROC AUC, EER, the threshold at
a false match rate."""
from __future__ import annotations

import math
import warnings

import numpy as np


def pair_scores(emb_a: np.ndarray, emb_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of L2-normalised embeddings [N, D] × [N, D] (row i = same identity).

    Returns (genuine [N], impostor [N·(N-1)]): the diagonal and the off-diagonal pairs.
    """
    a = emb_a / np.linalg.norm(emb_a, axis=1, keepdims=True)
    b = emb_b / np.linalg.norm(emb_b, axis=1, keepdims=True)
    sims = a @ b.T
    off = ~np.eye(len(a), dtype=bool)
    return np.diag(sims).copy(), sims[off]


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a genuine score exceeds an impostor score (ties count half)."""
    imp = np.sort(np.asarray(impostor))
    below = np.searchsorted(imp, genuine, side="left")
    not_above = np.searchsorted(imp, genuine, side="right")
    return float((below + not_above).sum() / (2.0 * len(genuine) * len(imp)))


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """EER: the error rate where false accepts equal false rejects (thresholds at every score)."""
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    far = (impostor[None, :] >= thresholds[:, None]).mean(1)
    frr = (genuine[None, :] < thresholds[:, None]).mean(1)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float) -> float:
    """The smallest threshold whose FMR (share of impostor scores ≥ it) is ≤ ``fmr``.

    impostor_scores [M]. With k = ⌊fmr·M⌋ false matches allowed, that is the next float above
    the (k+1)-th highest impostor score. With fewer than 1/fmr impostor scores (k = 0) it lies
    above every impostor score (measured FMR 0): the target FMR cannot be resolved, and a
    warning says so.
    """
    if not 0 < fmr < 1:
        raise ValueError(f"fmr must lie in (0, 1), not {fmr}")
    imp = np.asarray(impostor_scores, dtype=np.float64).ravel()
    if not np.isfinite(imp).all():
        raise ValueError("impostor scores: non-finite values")
    if imp.size == 0:
        raise ValueError("no impostor scores: cannot set a threshold")
    k = int(np.floor(np.round(fmr * imp.size, 9)))
    if k == 0:
        warnings.warn(f"only {imp.size} impostor scores: an FMR of {fmr:g} cannot be resolved (needs "
                      f"≥ {math.ceil(1 / fmr)}); threshold set above the highest impostor score (FMR 0)",
                      stacklevel=2)
    kth = np.partition(imp, imp.size - 1 - k)[imp.size - 1 - k]
    return float(np.nextafter(kth, np.inf))
