"""FaceQAN: quality from adversarial noise plus face symmetry (no dropout needed).

For each image, k noisy copies (uniform in [-eps, eps] on a [0, 1] pixel scale) take
l BIM steps away from the image's embedding: x ← clip(x + eps·sign(∇ (1 - cos(e(x), e(I))))).
S collects cos(e(I), e(x)) after every step; s_f = cos(e(I), e(flip(I))).
Q = ((1 + mean S)/2 · clip(1 - std S, 0, 1) · max(s_f, 0)) ** p.
The noise starts come from ``seed`` and are shared by all images of a batch.
"""
from __future__ import annotations

import torch

from ..backbones.base import Backbone
from .base import QualityEstimator, seeded_uniform


class FaceQan(QualityEstimator):
    """Args: eps (0.001, [0,1] scale), l BIM steps (5), k copies (10), p exponent (5), chunk images per pass."""

    name = "faceqan"

    def __init__(self, eps: float = 0.001, l: int = 5, k: int = 10, p: float = 5.0, chunk: int = 8):
        self.eps, self.l, self.k, self.p, self.chunk = eps, l, k, p, chunk

    def raw(self, backbone: Backbone, crops: torch.Tensor, features: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        eps = self.eps * 255.0  # crops are 0..255
        noise = (seeded_uniform((self.k,) + tuple(crops.shape[1:]), seed, crops.device, crops.dtype) * 2 - 1) * eps
        with torch.no_grad():
            refs = backbone(crops) if features is None else backbone.head(features.detach())
        out = []
        for part, ref in zip(crops.detach().split(self.chunk), refs.split(self.chunk)):
            b = part.shape[0]
            with torch.no_grad():
                sym = (ref * backbone(torch.flip(part, dims=[3]))).sum(-1)
            ref_k = ref.repeat_interleave(self.k, 0)
            x = (part.repeat_interleave(self.k, 0) + noise.repeat(b, 1, 1, 1)).clamp(0, 255)
            sims = []
            for step in range(self.l + 1):  # the similarity of step t comes with step t+1's forward
                x = x.detach().requires_grad_(step < self.l)
                with torch.set_grad_enabled(step < self.l):
                    cos = (backbone(x) * ref_k).sum(-1)
                if step > 0:
                    sims.append(cos.detach())
                if step < self.l:
                    (grad,) = torch.autograd.grad((1 - cos).sum(), x)
                    x = (x.detach() + eps * grad.sign()).clamp(0, 255)
            s = torch.stack(sims, 1).reshape(b, -1)  # [b, k*l]
            base = (1 + s.mean(1)) / 2 * (1 - s.std(1)).clamp(0, 1) * sym.clamp(min=0)
            out.append(base ** self.p)
        return torch.cat(out)
