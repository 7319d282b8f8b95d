"""Figures of the experiments (matplotlib), built from result rows and panels only.

* ``panel_grid``: faces as rows of image/PLQ-map pairs (paper Figs. 4, 6, 7);
* ``masking_distributions``: Δ_Q̂ and Δ_p per square size (Fig. 5);
* ``inpainting_sorted``: Q̂ before/after inpainting, sorted, with std bands (Fig. 3);
* ``delta_by_violation``: Δ_Q̂ per ICAO violation.

Rows may hold numbers or the strings of a CSV read back.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..plq import PLQ_COLORMAP
from .common import Panel


def _col(rows: Sequence[dict], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows], np.float64)


def panel_grid(faces: Sequence[Sequence[Panel]], title: str = "", cell: float = 1.6):
    """Each face is a pair of rows: images (Q̂ and label above) and their PLQ maps (fixed 0..1 scale)."""
    ncols = max(len(f) for f in faces)
    fig, axes = plt.subplots(2 * len(faces), ncols, figsize=(cell * ncols, 2.1 * cell * len(faces) + 0.4),
                             squeeze=False, gridspec_kw={"hspace": 0.3, "wspace": 0.05})
    for ax in axes.flat:
        ax.axis("off")
    im = None
    for i, panels in enumerate(faces):
        for j, p in enumerate(panels):
            axes[2 * i, j].imshow(p.image)
            axes[2 * i, j].set_title(f"{p.label}\nQ̂={p.quality:.3f}", fontsize=7)
            im = axes[2 * i + 1, j].imshow(p.plq, cmap=PLQ_COLORMAP, vmin=0, vmax=1)
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02, label="pixel quality")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _violins(ax, groups: list[np.ndarray], labels: list[str], ylabel: str) -> None:
    present = [(g, lab) for g, lab in zip(groups, labels) if len(g)]
    if present:
        ax.violinplot([g for g, _ in present], showmedians=True)
        ax.set_xticks(range(1, len(present) + 1), [f"{lab}\n{np.mean(g > 0):.0%} > 0" for g, lab in present],
                      fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(ylabel)


def masking_distributions(rows: Sequence[dict]):
    """Fig. 5: violins of Δ_Q̂ (Eq. 7) and Δ_p (Eq. 8) per square size, share of positive values below."""
    sizes = sorted({float(r["size"]) for r in rows})
    size = _col(rows, "size")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = ("quality lost Δ_Q̂ = Q̂_org − Q̂_mask", "PLQ lost Δ_p in the square")
    for ax, key, name in zip(axes, ("quality_lost", "plq_lost"), names):
        values = _col(rows, key)
        _violins(ax, [values[size == s] for s in sizes], [f"s={s:g}" for s in sizes], name)
    fig.suptitle("Random black squares (s on the 112-px scale): positive = degraded", fontsize=10)
    fig.tight_layout()
    return fig


def inpainting_sorted(rows: Sequence[dict]):
    """Fig. 3: Q̂ before and after inpainting, sorted by Q̂ before, each with its ± std band."""
    order = np.argsort(_col(rows, "quality_before"))
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for key, colour, label in (("quality_before", "tab:red", "before"), ("quality_after", "tab:green", "after")):
        mean, std = _col(rows, key)[order], _col(rows, f"{key}_std")[order]
        ax.plot(x, mean, ".-", color=colour, lw=1, ms=3, label=label)
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.25)
    change = np.array([str(rows[i].get("change", "")) for i in order])
    ax.set_title(f"up {np.mean(change == 'up'):.0%}, down {np.mean(change == 'down'):.0%}, "
                 f"within the std {np.mean(change == 'within'):.0%}", fontsize=9)
    ax.set_xlabel("image (sorted by Q̂ before)")
    ax.set_ylabel("Q̂")
    ax.legend()
    fig.tight_layout()
    return fig


def delta_by_violation(rows: Sequence[dict]):
    """Δ_Q̂ = Q̂_ref − Q̂ per violation (violins), the share of degraded faces under each label."""
    rows = [r for r in rows if r["violation"] not in ("reference", "as-is")]
    names = list(dict.fromkeys(r["violation"] for r in rows))
    values = _col(rows, "quality_lost")
    violation = np.array([r["violation"] for r in rows])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names)), 3.8))
    _violins(ax, [values[violation == n] for n in names], names, "quality lost Δ_Q̂ = Q̂_ref − Q̂")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title("ICAO-style violations: positive = lower quality than the compliant photo", fontsize=10)
    fig.tight_layout()
    return fig
