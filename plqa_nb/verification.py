"""Face verification metrics for checking a backbone: genuine vs impostor scores, ROC AUC, EER."""
from __future__ import annotations

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
