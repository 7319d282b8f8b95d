"""Notebook 4, random masking (paper Sec. V-B, Eqs. 7-8): one black square under the user's control with
live Q̂, Δ_Q̂ and Δ_p, and random squares on a few faces reproducing the Fig. 5 distributions.

The numbers are ``plqa_nb.experiments.masking``'s (``measure`` and ``run``); this module only shows them."""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML
from plotly.subplots import make_subplots

from ..config import ModelConfig
from ..degradations import to_crop_px
from ..experiments import masking
from ..experiments.common import FaceResult
from ..images import ImageLike
from ..pipeline import FaceAnalysis, cached_explainer
from .display import table_html
from .explorer import FaceUI
from .plotting import image_grid, plq_trace, rgb_trace


def square_result(session: FaceAnalysis, config: ModelConfig, x: int, y: int, size: int) -> FaceResult:
    """``masking.measure`` of one black size×size square (crop px, top-left x, y) on this face (cached):
    rows[0] holds Eqs. 7-8, panels the original and the masked crop with their maps."""
    square = masking.Square(size, 0, size, x, y)
    return session.memo("masked", (config, x, y, size), lambda: masking.measure(
        cached_explainer(config, device=str(session.device)), session.face_crop(config.backbone), [square]))


def square_table(session: FaceAnalysis, config: ModelConfig, x: int, y: int, size: int) -> list[dict]:
    """Eq. 7 and Eq. 8 for one square: a row with x, y, size_px, quality_org, quality_mask, quality_lost, plq_lost."""
    row = square_result(session, config, x, y, size).rows[0]
    return [{k: row[k] for k in ("x", "y", "size_px", "quality_org", "quality_mask", "quality_lost", "plq_lost")}]


def square_figure(session: FaceAnalysis, config: ModelConfig, x: int, y: int, size: int) -> go.Figure:
    """Original and masked crop with their PLQ maps, the square outlined; Δ_Q̂ and Δ_p in the title."""
    result = square_result(session, config, x, y, size)
    org, masked = result.panels
    row = result.rows[0]
    fig = image_grid([[(f"original, Q̂ = {org.quality:.3f}", rgb_trace(org.image)),
                       (f"masked, Q̂ = {masked.quality:.3f}", rgb_trace(masked.image)),
                       ("PLQ original", plq_trace(org.plq, colorbar=False)), ("PLQ masked", plq_trace(masked.plq))]],
                     title=f"{session.name}: quality lost Δ_Q̂ = {row['quality_lost']:+.3f} (Eq. 7), "
                           f"PLQ lost Δ_p = {row['plq_lost']:+.3f} (Eq. 8)")
    for col in (1, 3, 4):
        fig.add_shape(type="rect", x0=x - 0.5, y0=y - 0.5, x1=x + size - 0.5, y1=y + size - 0.5,
                      line={"color": "blue", "width": 2}, row=1, col=col)
    return fig


def masking_batch(sessions: Sequence[FaceAnalysis], config: ModelConfig, sizes: Sequence[float] = masking.SIZES,
                  per_size: int = 1, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """``plqa_nb.experiments.masking.run`` on each face in turn (sizes on the paper's 112-px scale), rows of
    all faces; ``progress(done, total)`` after each face."""
    if not sessions:
        return []
    explainer = cached_explainer(config, device=str(sessions[0].device))
    rows: list[dict] = []
    for i, session in enumerate(sessions, 1):
        rows += masking.run(explainer, [session.face_crop(config.backbone)], sizes, per_size)[0].rows
        if progress is not None:
            progress(i, len(sessions))
    return rows


def distributions_figure(rows: Sequence[dict]) -> go.Figure:
    """Fig. 5: Δ_Q̂ and Δ_p per square size (violins with every square), the share above 0 under each."""
    sizes = sorted({float(r["size"]) for r in rows})
    fig = make_subplots(rows=1, cols=2, subplot_titles=["quality lost Δ_Q̂ = Q̂_org − Q̂_mask (Eq. 7)",
                                                        "PLQ lost Δ_p in the square (Eq. 8)"])
    for col, key in ((1, "quality_lost"), (2, "plq_lost")):
        for s in sizes:
            values = np.array([float(r[key]) for r in rows if float(r["size"]) == s])
            fig.add_trace(go.Violin(y=values, name=f"s={s:g}<br>{np.mean(values > 0):.0%} > 0", box_visible=True,
                                    meanline_visible=True, points="all", pointpos=0, jitter=0.3, spanmode="hard",
                                    line_color="seagreen" if col == 1 else "darkorange", showlegend=False),
                          row=1, col=col)
        fig.add_hline(y=0, line_color="black", line_width=1, row=1, col=col)
    n_faces = len({r["file"] for r in rows})
    fig.update_layout(title=f"Random black squares on {n_faces} face(s), s on the 112-px scale: positive = noticed",
                      height=420, margin={"l": 50, "r": 10, "t": 70, "b": 60})
    return fig


class MaskingUI(FaceUI):
    """A face picker and x, y, size sliders (crop px) for one black square; shows ``square_figure`` and
    ``square_table`` live."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, config, device, face)
        s = self.config().crop_size
        size = to_crop_px(30, s)
        self.x = w.IntSlider(value=(s - size) // 2, min=0, max=s - 1, description="x", continuous_update=False)
        self.y = w.IntSlider(value=(s - size) // 3, min=0, max=s - 1, description="y", continuous_update=False)
        self.size = w.IntSlider(value=size, min=2, max=s // 2, description="size (px)", continuous_update=False)
        self._finish([[self.x, self.y, self.size]], observe=[self.x, self.y, self.size])

    def render(self) -> list:
        args = (self.session(), self.config(), self.x.value, self.y.value, self.size.value)
        return [square_figure(*args), HTML(table_html(square_table(*args)))]


def build_masking_ui(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                     device: str = "cpu", face: str | None = None) -> MaskingUI:
    """The masking explorer (display it as the last expression of a cell)."""
    return MaskingUI(samples, config, device, face)
