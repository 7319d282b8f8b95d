"""The backbone contract: a face-recognition network split for SER-FIQ.

Every backbone takes aligned RGB crops as float tensors **in 0..255**, shape
``[B, 3, S, S]`` with ``S = crop_size`` (the paper takes gradients w.r.t. 0-255
pixels, so γ values carry over), and returns L2-normalised embeddings ``[B, D]``.

It is split in two at the last dropout site:

* ``trunk(x)``: crop → features ``[B, F]`` (runs once per image),
* ``head(features, dropout_p, generator)``: dropout → final layers → normalised
  embedding ``[B, D]`` (runs m times for SER-FIQ).
"""
from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def crops_to_tensor(crops: np.ndarray | list[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 crops [B, S, S, 3] (or a list of [S, S, 3]) → float [B, 3, S, S] in 0..255."""
    arr = np.stack(crops) if isinstance(crops, list) else np.asarray(crops)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device).permute(0, 3, 1, 2).float()


@contextmanager
def module_outputs(network: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, the output of each module named in ``names`` (``named_modules``) by the last forward pass
    on this thread is kept in the yielded dict under its name (as computed: detach it if the pass records a graph);
    passes that other threads run meanwhile are not (``Backbone.reentrant``). ValueError naming the modules
    ``network`` lacks."""
    modules = dict(network.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"{type(network).__name__} has no module {', '.join(missing)} (feature_taps)")
    out: dict[str, torch.Tensor] = {}
    thread = threading.get_ident()

    def keep(name: str, output: torch.Tensor) -> None:
        if threading.get_ident() == thread:
            out[name] = output

    handles = [modules[n].register_forward_hook(lambda _m, _i, o, n=n: keep(n, o)) for n in names]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class BackboneDefaults:
    """Per-backbone choices of the method (DESIGN.md §1), used where no calibration bundle says otherwise.

    quality: name of the default quality estimator for this backbone.
    norm: the default Eq. 3 denominator, "signed" (Σe, the authors' code) or "l1" (‖e‖₁, the paper's text).
    family: the paper's network family whose published α, r, γ (``plqa_nb/shipped/paper/<family>.json``) an
        uncalibrated network of this kind starts from ("arcface" or "facenet").

    Fitted values (α, r, γ, heads, centres, norms) never live here: they are in calibration bundles
    (``plqa_nb.config``), written by ``plqa calibrate``.
    """

    quality: str
    norm: str = "signed"
    family: str = "arcface"


class Backbone(nn.Module):
    """Base class: subclasses define ``trunk`` and ``head_layers`` and the crop geometry.

    Attributes:
        name: registry name.
        crop_size: S, side of the aligned square crop in pixels.
        template: float array [5, 2], where the five MTCNN landmarks (left eye, right
            eye, nose tip, left and right mouth corner, left/right as seen in the image)
            land in the crop, in crop pixels. ``None`` means "no similarity alignment,
            use the backbone's own crop rule" (see ``alignment.py``).
        defaults: BackboneDefaults.
        feature_taps: names of modules (``named_modules``) whose feature maps the deviation map compares with
            compliant faces (``attribution.deviation``): one fine and one coarse map, about 1/8 and 1/16 of the
            crop; empty means the last feature map with more than one cell.
        reentrant: True where a forward pass keeps no state in the modules, so that passes may run on several
            threads at once (a serial run then computes two batches at a time, ``batch.run_batch``); False for a
            network of unknown make.
    """

    name: str = "backbone"
    crop_size: int = 112
    template: np.ndarray | None = None
    defaults: BackboneDefaults = BackboneDefaults("serfiq")
    feature_taps: tuple[str, ...] = ()
    reentrant: bool = False

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Crops [B,3,S,S] in 0..255 → features [B,F] before the last dropout site."""
        raise NotImplementedError

    def head_layers(self, features: torch.Tensor) -> torch.Tensor:
        """Features [B,F] (after dropout) → raw (unnormalised) embedding [B,D]."""
        raise NotImplementedError

    def head_features(self, features: torch.Tensor) -> torch.Tensor:
        """The trunk's features [B, F] as a trained quality head takes them (``quality.utility``): as they are
        by default; a backbone whose features are a flattened feature map overrides this to pool it."""
        return features

    def head(
        self,
        features: torch.Tensor,
        dropout_p: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Stochastic head: dropout(p) → final layers → L2-normalised embedding [B,D].

        Dropout uses inverted scaling 1/(1-p) as in torch; ``generator`` makes it seedable.
        """
        if dropout_p > 0:
            keep = torch.rand(features.shape, generator=generator, device=features.device,
                              dtype=features.dtype) >= dropout_p
            features = features * keep / (1.0 - dropout_p)
        return F.normalize(self.head_layers(features), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Crops [B,3,S,S] in 0..255 → L2-normalised embeddings [B,D] (deterministic)."""
        return self.head(self.trunk(x))

    def fingerprint(self) -> str:
        """SHA-1 of the network's parameters and buffers (names, shapes, float32 bytes): what ties shipped
        per-network data (an unrecognisable-identity centre, say) to these weights and not to a name.
        Computed once per instance; weights are not expected to change after loading."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            h = hashlib.sha1()
            for key, value in sorted(self.state_dict().items()):
                h.update(f"{key}:{tuple(value.shape)}".encode())
                h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            cached = self._fingerprint = h.hexdigest()
        return cached
