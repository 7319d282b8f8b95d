"""ROAD, remove and debias (Rong et al., ICML 2022): deletion curves without the black-fill bias.

Painting deleted pixels black (``faithfulness``) punishes maps whose deletions are scattered (they cut up the
face) and favours compact ones, whatever the map says. ROAD fills each removed pixel by a **noisy linear
imputation** from its neighbours: the removed pixels' values solve the linear system "every removed pixel is
the weighted mean of its 8 neighbours" (direct neighbours weigh 1/6, diagonal ones 1/12; known pixels are
fixed), plus Gaussian noise of std ``noise`` (on the 0-1 scale), so the filled region carries no shape a
network could pick up. Two orders:

* MoRF, most relevant first (the map's order): a faithful map makes Q̂ fall fast → low area;
* LeRF, least relevant first (the reverse order): Q̂ should stay high → high area.

The area under a curve is its mean Q̂ over ``fractions`` (as ``faithfulness.auc``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from .faithfulness import auc

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
_NEIGHBOURS = [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy linear imputation of the ``removed`` pixels (bool [H, W]) of ``image`` float [C, H, W] (0..255)."""
    c, h, w = image.shape
    idx = np.flatnonzero(removed.ravel())
    if idx.size == 0:
        return image.copy()
    col_of = np.full(h * w, -1)
    col_of[idx] = np.arange(idx.size)
    y, x = np.divmod(idx, w)
    rows, cols, vals = [np.arange(idx.size)], [np.arange(idx.size)], [np.ones(idx.size)]
    rhs = np.zeros((idx.size, c))
    flat = image.reshape(c, -1)
    total = np.zeros(idx.size)
    for dy, dx, wt in _NEIGHBOURS:
        ny, nx = y + dy, x + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        total[ok] += wt
    for dy, dx, wt in _NEIGHBOURS:
        ny, nx = y + dy, x + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        nb = ny[ok] * w + nx[ok]
        weight = wt / total[ok]
        unknown = col_of[nb] >= 0
        rows.append(np.flatnonzero(ok)[unknown])
        cols.append(col_of[nb[unknown]])
        vals.append(-weight[unknown])
        np.add.at(rhs, np.flatnonzero(ok)[~unknown], weight[~unknown, None] * flat[:, nb[~unknown]].T)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(idx.size, idx.size)).tocsc()
    solved = np.asarray(spsolve(a, rhs)).reshape(idx.size, c)
    out = flat.copy()
    out[:, idx] = (solved + rng.normal(0, noise * 255.0, solved.shape)).T
    return np.clip(out, 0, 255).reshape(c, h, w)


@dataclass
class RoadCurves:
    """fractions [P]; morf, lerf: Q̂ [B, K, P] for B faces and K orders; their AUCs [B, K]."""

    fractions: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor

    @property
    def morf_auc(self) -> torch.Tensor:
        return auc(self.morf, self.fractions)

    @property
    def lerf_auc(self) -> torch.Tensor:
        return auc(self.lerf, self.fractions)


def road_curves(images: torch.Tensor, orders: torch.Tensor, quality_fn: Callable[[torch.Tensor], torch.Tensor],
                fractions: tuple[float, ...] = FRACTIONS, noise: float = 0.01, seed: int = 0,
                chunk: int = 64) -> RoadCurves:
    """MoRF and LeRF curves of images [B, 3, S, S] (0..255) for pixel orders [B, K, S·S] (most relevant first),
    with Q̂ from ``quality_fn``; the imputation noise of face b, order k and fraction p is drawn from
    (seed, b, k, p), so every map of a face meets the same noise."""
    b, k = orders.shape[:2]
    s = images.shape[-1]
    pics = images.detach().double().cpu().numpy()
    filled = []
    for i in range(b):
        for j in range(k):
            order = orders[i, j].cpu().numpy()
            for reverse in (False, True):
                seq = order[::-1] if reverse else order
                for p, frac in enumerate(fractions):
                    removed = np.zeros(s * s, bool)
                    removed[seq[:int(round(frac * s * s))]] = True
                    rng = np.random.default_rng([seed, i, j, p, int(reverse)])
                    filled.append(impute(pics[i], removed.reshape(s, s), noise, rng))
    batch = torch.from_numpy(np.stack(filled)).to(images.device, images.dtype)
    q = torch.cat([quality_fn(part).detach() for part in batch.split(chunk)]).view(b, k, 2, len(fractions))
    return RoadCurves(fractions=torch.tensor(fractions, dtype=torch.float32, device=images.device),
                      morf=q[:, :, 0], lerf=q[:, :, 1])
