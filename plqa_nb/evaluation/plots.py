"""Figures of a method comparison (one per face, maps side by side, and a summary) and of error versus discard."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..plq import PLQ_COLORMAP
from .erc import DISCARD_AXIS, ErcResult, curve_style, title


def face_figure(crop: np.ndarray, views: Mapping[str, np.ndarray], scores: Mapping[str, tuple[float, float]],
                title: str = "", random_scores: tuple[float, float] | None = None):
    """Crop uint8 [S, S, 3] and each method's view [S, S] in [0, 1] side by side (fixed colour range).

    scores: method → (deletion AUC, insertion AUC); random_scores: the random baseline's pair.
    """
    n = len(views) + 1
    cols = min(n, 7)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.5 * rows + 0.3), squeeze=False,
                             layout="constrained")
    axes = axes.ravel()
    axes[0].imshow(crop)
    axes[0].set_title("crop" + (f"\nrandom D {random_scores[0]:.3f} I {random_scores[1]:.3f}"
                                if random_scores else ""), fontsize=7)
    for ax, (name, view) in zip(axes[1:], views.items()):
        ax.imshow(view, cmap=PLQ_COLORMAP, vmin=0, vmax=1)
        d, i = scores[name]
        ax.set_title(f"{name}\nD {d:.3f} I {i:.3f}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title}  (D: deletion AUC, lower is better; I: insertion AUC, higher is better)", fontsize=8)
    return fig


def summary_figure(fractions: np.ndarray, deletion: Mapping[str, np.ndarray], insertion: Mapping[str, np.ndarray],
                   table: Sequence[Mapping[str, str]], columns: Sequence[str]):
    """Mean deletion and insertion curves per method ([P] each, over fractions [P]; a method named
    "random" is drawn dashed) and a table of ``columns`` from ``table`` rows."""
    fig = plt.figure(figsize=(13, 4.4 + 0.22 * len(table)))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 0.6 + 0.25 * len(table)])
    colours = plt.get_cmap("tab20").colors
    for k, (curves, label) in enumerate([(deletion, "deletion (lower is better)"),
                                         (insertion, "insertion from blur (higher is better)")]):
        ax = fig.add_subplot(grid[0, k])
        for j, (name, curve) in enumerate(curves.items()):
            style = {"color": "k", "ls": "--"} if name == "random" else {"color": colours[j % len(colours)]}
            ax.plot(fractions, curve, label=name, lw=1.2, **style)
        ax.set_xlabel("fraction of pixels changed")
        ax.set_ylabel("mean Q̂")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax = fig.add_subplot(grid[1, :])
    ax.axis("off")
    if table:
        t = ax.table(cellText=[[str(r[c]) for c in columns] for r in table],
                     colLabels=[c.replace("_", "\n") for c in columns], loc="center", cellLoc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(7)
        t.scale(1, 1.2)
        t.auto_set_column_width([0])
        for (row, _), cell in t.get_celld().items():
            if row == 0:  # two- and three-line headers
                cell.set_height(cell.get_height() * 2.4)
    fig.tight_layout()
    return fig


def erc_figure(results: Sequence[ErcResult]):
    """FNMR over the effective discard fraction (stepwise) per quality method, random dashed, oracle dotted;
    the title names the threshold convention."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    dashes = {"solid": "-", "dash": "--", "dot": ":"}
    for r in results:
        colour, dash = curve_style(r.method)
        ax.step(r.curve.effective, r.curve.fnmr, where="post", label=r.label, color=colour, ls=dashes[dash], lw=1.4)
    ax.set_xlabel(DISCARD_AXIS[results[0].convention])
    ax.set_ylabel("FNMR")
    ax.set_ylim(bottom=0, top=None if results[0].curve.at(0) > 0 else 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title(results).replace("; ", "\n", 1), fontsize=8)
    return fig
