"""Notebook 1, the guided tutorial: photo → detection → alignment → quality → M_Q → saliency → PLQ map.

Pure functions (a ``FaceAnalysis`` and a ``ModelConfig`` in, a plotly Figure or a list-of-dicts table out)
and ``TutorialUI``, which wires pickers, an upload and sliders to them.
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import HTML

from ..backbones import available_backbones
from ..config import ModelConfig, resolve_config
from ..errors import ModelUnavailableError
from ..images import ImageLike
from ..experiments.common import StandsOut, stands_out
from ..experiments.feedback import feedback
from ..pipeline import FaceAnalysis, cached_explainer
from ..regions import region_means
from ..plq import plq_from_saliency
from ..quality import QualityScaling, available_estimators, get_estimator
from .display import render_into, table_html
from .explorer import FaceUI
from .plotting import LEGEND, image_grid, outline_flagged, plq_trace, rgb_trace, stands_out_panel
from .settings import quick_params

TABS = ("PLQ map", "steps", "numbers")  # the explorer's tabs (short: long titles are cut)
LANDMARKS = ("left eye", "right eye", "nose", "mouth left", "mouth right")

# estimator argument → (label, min, max, step); the sliders of the tutorial
PARAM_SLIDERS: dict[str, dict[str, tuple[str, float, float, float]]] = {
    "serfiq": {"m": ("passes m", 2, 200, 1), "p": ("dropout p", 0.05, 0.9, 0.05)},
    "faceqan": {"k": ("copies k", 1, 20, 1), "l": ("BIM steps l", 1, 10, 1), "p": ("exponent p", 1.0, 10.0, 0.5)},
}


def _points(xy: np.ndarray, name: str, symbol: str, color: str) -> go.Scatter:
    return go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name, text=list(LANDMARKS),
                      marker={"symbol": symbol, "size": 9, "color": color, "line": {"width": 1, "color": "black"}},
                      hovertemplate="%{text}<extra>" + name + "</extra>")


def alignment_figure(session: FaceAnalysis, backbone: str) -> go.Figure:
    """Detection (box and five landmarks on the photo) and alignment (the crop, its landmarks and the
    backbone's template)."""
    det = session.detection()
    aligned = session.aligned(backbone)
    fig = image_grid([[(f"detected: {det.faces_found} face(s), confidence {det.confidence:.3f}",
                        rgb_trace(session.photo)),
                       (f"aligned {aligned.crop.shape[0]}×{aligned.crop.shape[1]} crop ({backbone})",
                        rgb_trace(aligned.crop))]], title=f"{session.name}: detection and alignment", panel_px=330)
    x1, y1, x2, y2 = det.box
    fig.add_shape(type="rect", x0=x1, y0=y1, x1=x2, y1=y2, line={"color": "lime", "width": 2}, row=1, col=1)
    fig.add_trace(_points(det.landmarks, "landmarks", "circle", "lime"), row=1, col=1)
    fig.add_trace(_points(aligned.landmarks, "landmarks in the crop", "circle", "lime"), row=1, col=2)
    template = session.backbone(backbone).template
    if template is not None:
        fig.add_trace(_points(np.asarray(template), "template", "x", "magenta"), row=1, col=2)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.02})
    return fig


def quality_table(session: FaceAnalysis, config: ModelConfig) -> list[dict]:
    """The numbers from Q to the PLQ map: rows with keys step, symbol, value, meaning."""
    res = session.explain(config)
    sc = config.scaling()
    emb_sum = float(res.embedding.sum())
    w = session.weight(config)
    signed = config.norm == "signed"
    params = ", ".join(f"{k}={v:g}" for k, v in config.quality_params) or "defaults"
    return [
        {"step": "quality", "symbol": "Q", "value": res.quality_raw,
         "meaning": f"{res.quality_method} raw quality ({params}, seed {config.seed})"},
        {"step": "scaling", "symbol": "α", "value": sc.alpha, "meaning": "Eq. 2 stretch"},
        {"step": "scaling", "symbol": "r", "value": sc.r, "meaning": "Eq. 2 centre (a development set's mean Q)"},
        {"step": "scaling", "symbol": "Q̂", "value": res.quality, "meaning": "sigmoid(α (Q − r)), in [0, 1]"},
        {"step": "regression", "symbol": "Σe", "value": emb_sum, "meaning": "sum of the embedding's components"},
        {"step": "regression", "symbol": "w", "value": w,
         "meaning": "Eq. 3 weight " + ("Q̂ / Σe (signed, the authors' code)" if signed else "Q̂ / ‖e‖₁ (l1, the paper)")},
        {"step": "regression", "symbol": "M_Q(I)", "value": w * emb_sum,
         "meaning": "w · Σe: M_Q reproduces Q̂" if signed else "w · Σe = Q̂ · Σe / ‖e‖₁ (Q̂ exactly with the signed form)"},
        {"step": "saliency", "symbol": "mean Ŝ", "value": float(res.saliency.mean()),
         "meaning": "Eq. 5: mean |∂M_Q/∂I| over colours, averaged over pixels"},
        {"step": "PLQ", "symbol": "γ", "value": sc.gamma, "meaning": "Eq. 6 exponent: v = ½ at Ŝ = 10^(−γ/2)"},
        {"step": "PLQ", "symbol": "mean P", "value": float(res.plq.mean()), "meaning": "mean pixel-level quality"},
    ]


def scaling_range(alpha: float, r: float, q: float) -> tuple[float, float]:
    """The raw-quality axis of the Eq. 2 plot: where the sigmoid rises from 1 % to 99 % (r ± 4.6/α), widened by
    half, and this face's Q."""
    half = 1.5 * np.log(99) / abs(alpha)
    return min(r - half, q), max(r + half, q)


def scaling_figure(session: FaceAnalysis, config: ModelConfig) -> go.Figure:
    """Eq. 2: the curve Q̂ = sigmoid(α (Q − r)) with this face's (Q, Q̂) and the centre r, over the range
    where the curve rises (``scaling_range``) so that r and the slope can be read."""
    sc = config.scaling()
    q = session.raw_quality(config)
    xs = np.linspace(*scaling_range(sc.alpha, sc.r, q), 201)
    fig = go.Figure([go.Scatter(x=xs, y=sc(torch.from_numpy(xs)).numpy(), mode="lines", name="Q̂(Q)"),
                     go.Scatter(x=[q], y=[float(sc(torch.tensor(q)))], mode="markers", name="this face",
                                marker={"size": 11, "color": "crimson"})])
    fig.add_vline(x=sc.r, line_dash="dash", annotation_text="r")
    fig.update_layout(title=f"Eq. 2 scaling, α = {sc.alpha:g}, r = {sc.r:g}", xaxis_title="raw quality Q",
                      yaxis_title="scaled quality", yaxis_range=[0, 1], width=480, height=320,
                      margin={"l": 50, "r": 10, "t": 50, "b": 45})
    return fig


def plq_curve_figure(session: FaceAnalysis, config: ModelConfig) -> go.Figure:
    """Eq. 6: v(Ŝ) against log10 Ŝ for the current γ, over the histogram of this face's pixels."""
    gamma = config.gamma
    logs = np.log10(np.maximum(session.explain(config).saliency, 1e-12)).ravel()
    lo, hi = -gamma / 2 - 3, -gamma / 2 + 3
    counts, edges = np.histogram(np.clip(logs, lo, hi), bins=60, range=(lo, hi))
    xs = np.linspace(lo, hi, 200)
    fig = go.Figure([go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts / max(counts.max(), 1), name="pixels (scaled)",
                            marker_color="lightgray"),
                     go.Scatter(x=xs, y=plq_from_saliency(10.0 ** xs, gamma), mode="lines", name="v(Ŝ)",
                                line={"color": "seagreen", "width": 3})])
    fig.update_layout(title=f"Eq. 6 mapping, γ = {gamma:g}", xaxis_title="log10 Ŝ", yaxis_title="PLQ",
                      yaxis_range=[0, 1.02], bargap=0, width=480, height=320,
                      margin={"l": 50, "r": 10, "t": 50, "b": 45})
    return fig


def stands_out_here(session: FaceAnalysis, config: ModelConfig) -> StandsOut:
    """What stands out in the face's aligned crop (``stands_out``)."""
    face = session.face_crop(config.backbone)
    return stands_out(cached_explainer(config, device=str(session.device)), face.crop, face.landmarks)


def tutorial_feedback(session: FaceAnalysis, config: ModelConfig) -> str:
    """The feedback in words for the face: the region to change first, then the detail (``feedback``)."""
    res, look = session.explain(config), stands_out_here(session, config)
    return feedback(region_means(res.plq, look.masks), res.quality, flagged=look.flag)


def maps_figure(session: FaceAnalysis, config: ModelConfig) -> go.Figure:
    """The tutorial's main figure: the crop (the flagged part outlined, ``plotting.FLAGGED``), its PLQ map ("what
    each pixel is worth") and its deviation map ("what stands out", where the backbone has a compliant-face norm);
    below, the saliency (log10 Ŝ) and the PLQ on the photo."""
    res = session.explain(config)
    look = stands_out_here(session, config)
    mid = -config.gamma / 2  # v = 1/2 here
    sal = go.Heatmap(z=np.log10(np.maximum(res.saliency, 1e-12)), colorscale="gray", zmin=mid - 2, zmax=mid + 2,
                     showscale=False, hovertemplate="log10 Ŝ %{z:.2f}<extra></extra>")
    top = [("aligned crop", rgb_trace(res.crop)), ("PLQ map P = v(Ŝ)", plq_trace(res.plq))]
    if look.deviation is not None:
        top.append(stands_out_panel(look))
    fig = image_grid([top, [("saliency log10 Ŝ", sal), ("PLQ on the photo", rgb_trace(res.overlay()))]],
                     title=f"{session.name}: Q̂ = {res.quality:.3f} (Q = {res.quality_raw:.3f}; "
                           f"{res.backbone}, {res.quality_method})", panel_px=230)
    outline_flagged(fig, look, row=1)
    return fig


def stages_run(session: FaceAnalysis, config: ModelConfig) -> str:
    """Explain ``session`` under ``config`` and say which stages that ran, e.g. "quality ×1", or that the
    cached stages sufficed."""
    before = dict(session.computed)
    session.explain(config)
    ran = {k: v - before.get(k, 0) for k, v in session.computed.items() if v != before.get(k, 0)}
    return ", ".join(f"{k} ×{n}" for k, n in sorted(ran.items())) or "no stage reran: arithmetic on the cached ones"


def scaling_note(old: QualityScaling, new: ModelConfig) -> str:
    """What a change of backbone or estimator did to the sliders' α, r and γ, in words ("" when nothing
    moved)."""
    moved = [f"{k} {getattr(old, a):.4g} → {getattr(new, a):.4g}" for k, a in (("α", "alpha"), ("r", "r"),
                                                                               ("γ", "gamma"))
             if not np.isclose(getattr(old, a), getattr(new, a))]
    return f"{', '.join(moved)}: the defaults of {new.backbone} with {new.quality}" if moved else ""


def estimator_defaults(name: str) -> dict[str, float]:
    """Starting values of an estimator's sliders: the quick-mode values where set, else its own defaults."""
    quick = quick_params(name)
    est = get_estimator(name)
    return {k: quick.get(k, getattr(est, k)) for k in PARAM_SLIDERS.get(name, {})}


class TutorialUI(FaceUI):
    """Face picker and upload, backbone and estimator dropdowns, sliders for the estimator's arguments,
    seed, α, r and γ; shows the step figures and the table, recomputing only the stages that changed."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, config, device, face)
        start = self.base_config
        self.backbone = w.Dropdown(options=available_backbones(), value=start.backbone, description="backbone")
        self.estimator = w.Dropdown(options=available_estimators(), value=start.quality,
                                    description="estimator")
        self.seed = w.IntSlider(value=start.seed, min=0, max=99, description="seed", continuous_update=False)
        self.alpha = w.FloatLogSlider(base=10, min=-1, max=3, step=0.05, description="α", continuous_update=False)
        self.r = w.FloatSlider(min=0.0, max=1.0, step=0.005, readout_format=".3f", description="r",
                               continuous_update=False)
        self.gamma = w.FloatSlider(min=3.0, max=16.0, step=0.1, description="γ", continuous_update=False)
        self.params = w.HBox()
        self.status = w.HTML()  # the stages computed so far
        self.message = w.HTML()  # what the last change of backbone or estimator did
        self.out_steps, self.out_table = w.Output(), w.Output()
        self._param_sliders: dict[str, w.ValueWidget] = {}
        self._reset_estimator(dict(start.quality_params))
        self._set_scaling(start)
        self.estimator.observe(lambda c: None if self._hold else self._on_model(c, new_estimator=True),
                               names="value")
        self.backbone.observe(lambda c: None if self._hold else self._on_model(c, new_estimator=False), names="value")
        self._finish([[self.backbone, self.estimator], [self.message], [self.params],
                      [self.alpha, self.r, self.gamma], [self.seed], [self.status]],
                     observe=[self.seed, self.alpha, self.r, self.gamma])
        tabs = w.Tab(children=[self.output, self.out_steps, self.out_table])
        for i, title in enumerate(TABS):
            tabs.set_title(i, title)
        self.widget.children = self.widget.children[:-1] + (tabs,)

    def _set_scaling(self, config: ModelConfig) -> None:
        sc = config.scaling()
        self._hold = True
        self.alpha.value, self.r.value, self.gamma.value = sc.alpha, sc.r, sc.gamma
        self._hold = False

    def _reset_estimator(self, values: dict[str, float] | None = None) -> None:
        name = self.estimator.value
        values = {**estimator_defaults(name), **(values or {})}
        self._param_sliders = {}
        for key, (label, lo, hi, step) in PARAM_SLIDERS.get(name, {}).items():
            kind = w.IntSlider if isinstance(step, int) else w.FloatSlider
            slider = kind(value=values[key], min=lo, max=hi, step=step, description=label,
                          continuous_update=False, style={"description_width": "initial"})
            slider.observe(lambda _: self.update(), names="value")
            self._param_sliders[key] = slider
        self.params.children = list(self._param_sliders.values())

    def _on_model(self, change: dict, new_estimator: bool) -> None:
        """A new backbone or estimator: its default α, r, γ (and the estimator's default arguments), said in
        the message line; a model that cannot load puts its dropdown back and says why."""
        old = QualityScaling(alpha=self.alpha.value, r=self.r.value, gamma=self.gamma.value)
        try:
            new = resolve_config(self.backbone.value, self.estimator.value)
            self.session().backbone(new.backbone)  # a backbone whose weights cannot be had fails here
        except ModelUnavailableError as exc:  # e.g. FaceNet weights not downloadable here
            self._hold = True
            (self.estimator if new_estimator else self.backbone).value = change["old"]
            self._hold = False
            self.message.value = f"<small style='color:#b00020'>{html.escape(str(exc))}</small>"
            return
        if new_estimator:
            self._reset_estimator()
        self._set_scaling(new)
        self.message.value = f"<small>{html.escape(scaling_note(old, new))}</small>"
        self.update()

    def config(self) -> ModelConfig:
        """The configuration the controls show."""
        params = {k: s.value for k, s in self._param_sliders.items()}
        return resolve_config(self.backbone.value, self.estimator.value, quality_params=params,
                              seed=self.seed.value, alpha=self.alpha.value, r=self.r.value, gamma=self.gamma.value)

    def render(self) -> list:
        session, config = self.session(), self.config()
        return [HTML(f"<p><b>Feedback:</b> {html.escape(tutorial_feedback(session, config))}</p>"),
                maps_figure(session, config), HTML(LEGEND)]

    def update(self) -> None:
        """Redraw all tabs for the current controls; only the changed stages recompute."""
        if self._hold:
            return
        session, config = self.session(), self.config()
        super().update()
        render_into(self.out_steps, lambda: [alignment_figure(session, config.backbone),
                                             scaling_figure(session, config), plq_curve_figure(session, config)])
        render_into(self.out_table, lambda: [HTML(table_html(quality_table(session, config)))])
        runs = ", ".join(f"{k} ×{v}" for k, v in sorted(session.computed.items()))
        self.status.value = f"<small>stages computed for this face so far: {runs or 'none'}</small>"


def build_tutorial_ui(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                      device: str = "cpu", face: str | None = None) -> TutorialUI:
    """The tutorial's interactive explorer (display it as the last expression of a cell)."""
    return TutorialUI(samples, config, device, face)
