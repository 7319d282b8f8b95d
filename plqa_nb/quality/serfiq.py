"""SER-FIQ (Eq. 1): robustness of the embedding under dropout.

The trunk runs once per image; only the stochastic head is repeated m times:
Q = 2 · sigmoid(-mean pairwise Euclidean distance of the m normalised embeddings).
The m dropout masks come from ``seed`` and are shared by all images of a batch, so an
image scores the same alone or in a batch.
"""
from __future__ import annotations

import torch

from ..backbones.base import Backbone
from .base import QualityEstimator, seeded_generator, seeded_uniform


class SerFiq(QualityEstimator):
    """Args: m stochastic passes (100), dropout probability p (0.5), chunk: images per head batch."""

    name = "serfiq"

    def __init__(self, m: int = 100, p: float = 0.5, chunk: int = 64):
        if m < 2:
            raise ValueError("SER-FIQ needs m >= 2 stochastic passes")
        self.m, self.p, self.chunk = m, p, chunk

    def raw(self, backbone: Backbone, crops: torch.Tensor, features: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        with torch.no_grad():
            feats = backbone.trunk(crops) if features is None else features.detach()
            masks = seeded_uniform((self.m, feats.shape[1]), seed, feats.device, feats.dtype) >= self.p
            scale = masks.to(feats.dtype) / (1.0 - self.p)
            out = []
            for part in feats.split(self.chunk):
                b = part.shape[0]
                dropped = (part[:, None, :] * scale[None]).reshape(b * self.m, -1)
                emb = torch.nn.functional.normalize(backbone.head_layers(dropped), dim=-1).reshape(b, self.m, -1)
                dist = torch.cdist(emb, emb)  # [b, m, m]
                iu = torch.triu_indices(self.m, self.m, offset=1, device=emb.device)
                out.append(2.0 * torch.sigmoid(-dist[:, iu[0], iu[1]].mean(1)))
            return torch.cat(out)


def serfiq_full_network(backbone: Backbone, crops: torch.Tensor, m: int = 100, p: float = 0.5,
                        seed: int = 0) -> torch.Tensor:
    """The reference way: m whole-network passes per image (for the benchmark's speed-up figure)."""
    g = seeded_generator(seed, crops.device)
    with torch.no_grad():
        embs = torch.stack([backbone.head(backbone.trunk(crops), p, g) for _ in range(m)], 1)
        dist = torch.cdist(embs, embs)
        iu = torch.triu_indices(m, m, offset=1, device=crops.device)
        return 2.0 * torch.sigmoid(-dist[:, iu[0], iu[1]].mean(1))
