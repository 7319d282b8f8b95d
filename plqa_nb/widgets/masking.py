"""Notebook 4, random masking (paper Sec. V-B, Eqs. 7-8): one black square under the user's control with
live Q̂, Δ_Q̂ and Δ_p, and random squares on a few faces reproducing the Fig. 5 distributions."""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML
from plotly.subplots import make_subplots

from ..degradations import black_square, to_crop_px
from ..experiments import masking
from ..images import ImageLike
from .common import (FaceSession, FaceUI, Settings, explain_images, explainer_for, image_grid, plq_trace, rgb_trace,
                     table_html)


def masked_face(session: FaceSession, settings: Settings, x: int, y: int,
                size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """The crop with a black size×size square (crop px, top-left x, y), its Q̂ and PLQ map [S, S] (cached)."""
    def compute() -> tuple[np.ndarray, float, np.ndarray]:
        image = black_square(session.aligned(settings.backbone).crop, x, y, size)
        q, plq = explain_images(settings, [image], str(session.device))
        return image, float(q[0]), plq[0]

    return session.memo("masked", (settings, x, y, size), compute)


def square_table(session: FaceSession, settings: Settings, x: int, y: int, size: int) -> list[dict]:
    """Eq. 7 and Eq. 8 for one square: one row with x, y, size_px, quality_org, quality_mask, delta_q, delta_p."""
    org = session.explain(settings)
    _, q, plq = masked_face(session, settings, x, y, size)
    inside = (slice(y, y + size), slice(x, x + size))
    return [{"x": x, "y": y, "size_px": size, "quality_org": org.quality, "quality_mask": q,
             "delta_q": org.quality - q, "delta_p": float(org.plq[inside].mean() - plq[inside].mean())}]


def square_figure(session: FaceSession, settings: Settings, x: int, y: int, size: int) -> go.Figure:
    """Original and masked crop with their PLQ maps, the square outlined; Δ_Q̂ and Δ_p in the title."""
    org = session.explain(settings)
    image, q, plq = masked_face(session, settings, x, y, size)
    row = square_table(session, settings, x, y, size)[0]
    fig = image_grid([[(f"original, Q̂ = {org.quality:.3f}", rgb_trace(org.crop)),
                       (f"masked, Q̂ = {q:.3f}", rgb_trace(image)),
                       ("PLQ original", plq_trace(org.plq, colorbar=False)), ("PLQ masked", plq_trace(plq))]],
                     title=f"{session.name}: Δ_Q̂ = {row['delta_q']:+.3f} (Eq. 7), "
                           f"Δ_p = {row['delta_p']:+.3f} (Eq. 8)")
    for col in (1, 3, 4):
        fig.add_shape(type="rect", x0=x - 0.5, y0=y - 0.5, x1=x + size - 0.5, y1=y + size - 0.5,
                      line={"color": "blue", "width": 2}, row=1, col=col)
    return fig


def masking_batch(sessions: Sequence[FaceSession], settings: Settings, sizes: Sequence[float] = masking.SIZES,
                  per_size: int = 1, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """``plqa_nb.experiments.masking.run`` on each face in turn (sizes on the paper's 112-px scale), rows of
    all faces; ``progress(done, total)`` after each face."""
    if not sessions:
        return []
    explainer = explainer_for(settings, str(sessions[0].device))
    rows: list[dict] = []
    for i, session in enumerate(sessions, 1):
        rows += masking.run(explainer, [session.face_crop(settings.backbone)], sizes, per_size)[0].rows
        if progress is not None:
            progress(i, len(sessions))
    return rows


def distributions_figure(rows: Sequence[dict]) -> go.Figure:
    """Fig. 5: Δ_Q̂ and Δ_p per square size (violins with every square), the share above 0 under each."""
    sizes = sorted({float(r["size"]) for r in rows})
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Δ_Q̂ = Q̂_org − Q̂_mask (Eq. 7)",
                                                        "Δ_p = mean PLQ drop in the square (Eq. 8)"])
    for col, key in ((1, "delta_q"), (2, "delta_p")):
        for s in sizes:
            values = np.array([float(r[key]) for r in rows if float(r["size"]) == s])
            fig.add_trace(go.Violin(y=values, name=f"s={s:g}<br>{np.mean(values > 0):.0%} > 0", box_visible=True,
                                    meanline_visible=True, points="all", pointpos=0, jitter=0.3, spanmode="hard",
                                    line_color="seagreen" if col == 1 else "darkorange", showlegend=False),
                          row=1, col=col)
        fig.add_hline(y=0, line_color="black", line_width=1, row=1, col=col)
    n_faces = len({r["file"] for r in rows})
    fig.update_layout(title=f"Random black squares on {n_faces} face(s), s on the 112-px scale: positive = noticed",
                      width=980, height=420, margin={"l": 50, "r": 10, "t": 70, "b": 60})
    return fig


class MaskingUI(FaceUI):
    """A face picker and x, y, size sliders (crop px) for one black square; shows ``square_figure`` and
    ``square_table`` live (the original's map is cached, only the masked crop is explained)."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, settings, device, face)
        s = self.settings().crop_size()
        size = to_crop_px(30, s)
        self.x = w.IntSlider(value=(s - size) // 2, min=0, max=s - 1, description="x", continuous_update=False)
        self.y = w.IntSlider(value=(s - size) // 3, min=0, max=s - 1, description="y", continuous_update=False)
        self.size = w.IntSlider(value=size, min=2, max=s // 2, description="size (px)", continuous_update=False)
        self._finish([[self.face], [self.x, self.y, self.size]], observe=[self.x, self.y, self.size])

    def render(self) -> list:
        args = (self.session(), self.settings(), self.x.value, self.y.value, self.size.value)
        return [square_figure(*args), HTML(table_html(square_table(*args)))]


def build_masking_ui(samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                     device: str = "cpu", face: str | None = None) -> MaskingUI:
    """The masking explorer (display it as the last expression of a cell)."""
    return MaskingUI(samples, settings, device, face)
