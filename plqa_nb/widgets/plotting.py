"""Plotly building blocks of the notebooks: images, PLQ maps with the paper's fixed colour scale, mask
outlines and titled image grids that fit their output box."""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..figures import OUTLINE_RGB
from ..plq import PLQ_COLORSCALE

if TYPE_CHECKING:
    from ..experiments.common import StandsOut

MAX_FIXED_WIDTH = 600  # px: narrower than any output box of a notebook or of the app


def rgb_trace(image: np.ndarray, name: str = "") -> go.Image:
    """An RGB image uint8 [H, W, 3] as a plotly trace (embedded as a PNG, small in notebooks)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return go.Image(source="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), name=name,
                    hoverinfo="skip")


def plq_trace(plq: np.ndarray, name: str = "PLQ", colorbar: bool = True) -> go.Heatmap:
    """A PLQ map [S, S] with the paper's red → yellow → green scale, fixed to [0, 1]."""
    return go.Heatmap(z=np.asarray(plq, np.float32), colorscale=PLQ_COLORSCALE, zmin=0.0, zmax=1.0, name=name,
                      showscale=colorbar, colorbar={"title": {"text": "PLQ"}, "len": 0.8},
                      hovertemplate="x %{x}, y %{y}<br>PLQ %{z:.2f}<extra></extra>")


def deviation_trace(deviation: np.ndarray, threshold: float) -> go.Heatmap:
    """A deviation map [S, S] (``attribution.deviation``: 1 ≈ as in compliant faces) from white to red, fixed to
    [0, 2 × the flag ``threshold``], so that a flagged part is red whatever the network (no colour bar: the
    figure's one bar is the PLQ map's; ``LEGEND`` says what the colours mean)."""
    return go.Heatmap(z=np.asarray(deviation, np.float32), colorscale="Reds", zmin=0.0, zmax=2.0 * threshold,
                      name="deviation", showscale=False,
                      hovertemplate="x %{x}, y %{y}<br>deviation %{z:.2f}<extra></extra>")


FLAGGED = "flagged region"  # the name of the flagged part's outline in every figure
OUTLINE = "rgb" + str(OUTLINE_RGB)  # its colour, the one of `plqa explain`'s PNG
LEGEND = ("<small><b>PLQ map</b>: what each pixel is worth for recognition (red 0, useless … green 1, useful).<br>"
          "<b>Deviation map</b>: what stands out, how unlike compliant faces the network sees each part (white: as "
          "in compliant faces … red: far from them); the flagged part is outlined in blue.</small>")


def outline_trace(mask: np.ndarray, color: str = "blue", name: str = "mask") -> go.Contour:
    """The outline of a bool mask [S, S], to lay over an image or map panel."""
    return go.Contour(z=np.asarray(mask, np.float32), contours={"start": 0.5, "end": 0.5, "coloring": "none"},
                      line={"color": color, "width": 2}, showscale=False, showlegend=False, name=name,
                      hoverinfo="skip")


def stands_out_panel(look: StandsOut) -> tuple[str, go.Heatmap]:
    """The deviation-map panel (title, trace) of ``look`` (a ``StandsOut`` with a deviation map), titled by what
    stands out."""
    return f"stands out: {look.flag[0] or 'nothing'}", deviation_trace(look.deviation, look.threshold)


def outline_flagged(fig: go.Figure, look: StandsOut, row: int) -> None:
    """Outline ``look``'s flagged part, if any, on the photo (column 1) and the deviation map (column 3) of
    ``row``."""
    if look.part.any():
        for col in (1, 3):
            fig.add_trace(outline_trace(look.part, OUTLINE, FLAGGED), row=row, col=col)


def image_grid(rows: Sequence[Sequence[tuple[str, go.BaseTraceType]]], title: str = "",
               panel_px: int = 210) -> go.Figure:
    """Titled panels in a grid (rows of (title, trace)), square pixels, no axes; ``panel_px`` high, as wide as
    the page's box (no fixed width, so that nothing is cut off)."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    gap = 45  # px between rows, room for two-line titles
    height = panel_px * n_rows + gap * (n_rows - 1) + 75
    fig = make_subplots(rows=n_rows, cols=n_cols, horizontal_spacing=0.015, vertical_spacing=gap / height,
                        subplot_titles=[t for r in rows for t, _ in list(r) + [("", None)] * (n_cols - len(r))])
    for i, row in enumerate(rows, 1):
        for j, (_, trace) in enumerate(row, 1):
            fig.add_trace(trace, row=i, col=j)
            axis = (i - 1) * n_cols + j
            fig.update_yaxes(scaleanchor=f"x{'' if axis == 1 else axis}", autorange="reversed", row=i, col=j)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=height,
                      margin={"l": 10, "r": 10, "t": 65, "b": 10}, plot_bgcolor="white")
    return fig
