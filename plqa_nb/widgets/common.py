"""What the widget notebooks share: quick mode, the settings of a PLQ map, a per-face cache of the
pipeline's stages, plotly image grids, HTML tables and a progress bar.

Every widget callback wraps a pure function (inputs → plotly Figure or a list-of-dicts table);
``FaceSession`` memoises the expensive stages so a slider move recomputes only what it changes:
γ re-applies v(·) to the cached saliency, α and r rescale it (Ŝ is linear in the Eq. 3 weight),
the estimator, its parameters and the seed recompute the raw quality only.
"""
from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from IPython.core.formatters import DisplayFormatter
from IPython.display import HTML, display
from PIL import Image
from plotly.subplots import make_subplots

from ..alignment import AlignedFace, align_face
from ..backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from ..data import astronaut, london, sample_images
from ..detection import Detection, detect_faces
from ..experiments.common import FaceCrop
from ..images import ImageLike, describe, load_image
from ..pipeline import Explainer, Explanation, crops_to_tensor
from ..plq import PLQ_COLORSCALE, merge_channels, plq_from_saliency
from ..quality import QualityScaling, default_scaling, get_estimator
from ..regression import QualityRegressionModel, quality_weights

T = TypeVar("T")

ASTRONAUT = "astronaut (skimage)"  # the sample name of plqa_nb.data.astronaut()
_FORMATTER = DisplayFormatter()
QUICK_PARAMS = {"serfiq": {"m": 10}, "faceqan": {"k": 2, "l": 1}, "ers": {}}  # estimator arguments in quick mode


def quick_mode() -> bool:
    """True when the environment variable PLQA_QUICK is set to 1/true/yes/on (small m, few faces and steps)."""
    return os.environ.get("PLQA_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


def quick(full: T, small: T) -> T:
    """``small`` in quick mode, else ``full``."""
    return small if quick_mode() else full


@dataclass(frozen=True)
class Settings:
    """Everything a PLQ map depends on.

    quality: estimator name (None: the backbone's default); params: its constructor arguments as
    sorted (name, value) pairs; alpha, r, gamma: None takes the backbone's defaults (Eq. 2, Eq. 6);
    norm: Eq. 3 denominator ("signed" or "l1"; None: the backbone's default).
    """

    backbone: str = DEFAULT_BACKBONE
    quality: str | None = None
    params: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    alpha: float | None = None
    r: float | None = None
    gamma: float | None = None
    norm: str | None = None

    def eq3_norm(self) -> str:
        """The Eq. 3 denominator, resolving None to the backbone's default."""
        return self.norm or load_backbone(self.backbone).defaults.norm

    def estimator_name(self) -> str:
        """The estimator's name, resolving None to the backbone's default."""
        return self.quality or load_backbone(self.backbone).defaults.quality

    def scaling(self) -> QualityScaling:
        """Eq. 2 and Eq. 6 parameters: the backbone's defaults, overridden where set."""
        base = default_scaling(load_backbone(self.backbone), self.estimator_name())
        return QualityScaling(alpha=base.alpha if self.alpha is None else float(self.alpha),
                              r=base.r if self.r is None else float(self.r),
                              gamma=base.gamma if self.gamma is None else float(self.gamma))

    def crop_size(self) -> int:
        """The crop side S of the backbone."""
        return load_backbone(self.backbone).crop_size

    def with_params(self, **params: float) -> "Settings":
        """A copy with these estimator arguments (others dropped)."""
        return replace(self, params=tuple(sorted(params.items())))

    def explainer_args(self) -> dict[str, Any]:
        """Keyword arguments of ``Explainer`` giving the same Q̂ and maps."""
        return {"backbone": self.backbone, "quality": self.estimator_name(), "calibration": self.scaling(),
                "seed": self.seed, "norm": self.eq3_norm(), "quality_params": dict(self.params)}


def default_settings(**changes: Any) -> Settings:
    """The notebooks' starting settings: default backbone and estimator, small estimator arguments in quick mode."""
    s = Settings(**changes)
    if not s.params and quick_mode():
        s = s.with_params(**QUICK_PARAMS.get(s.estimator_name(), {}))
    return s


@dataclass(frozen=True)
class Network:
    """One pass of the backbone on a crop: trunk features [1, F], embedding [1, D] and the unit saliency
    [S, S] = Eq. 5 of ∂(Σ_k e_k)/∂I, the PLQ saliency of an Eq. 3 weight of 1."""

    features: torch.Tensor
    embedding: torch.Tensor
    unit_saliency: np.ndarray


class FaceSession:
    """One photo and its pipeline stages, each computed once per the settings it depends on.

    detection: once; alignment: per backbone; network pass (features, embedding, unit saliency):
    per backbone; raw quality: per backbone, estimator, its arguments and seed. ``explain(settings)``
    then only does arithmetic. ``computed`` counts the runs of each stage.
    """

    def __init__(self, image: ImageLike, name: str | None = None, device: str = "cpu"):
        self.name = name or "/".join(Path(describe(image)).parts[-2:])
        self.photo = load_image(image)
        self.device = torch.device(device)
        self.computed: Counter[str] = Counter()
        self._cache: dict[tuple, Any] = {}

    def memo(self, stage: str, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()`` once per (stage, key) for this face; counted in ``computed[stage]``."""
        k = (stage,) + key
        if k not in self._cache:
            self._cache[k] = compute()
            self.computed[stage] += 1
        return self._cache[k]

    def backbone(self, name: str) -> Backbone:
        return load_backbone(name, self.device)

    def detection(self) -> Detection:
        """The largest face of the photo (MTCNN)."""
        return self.memo("detection", (), lambda: detect_faces(self.photo, self.name, str(self.device)))

    def aligned(self, backbone: str) -> AlignedFace:
        """The face aligned to ``backbone``'s crop."""
        bb = self.backbone(backbone)
        return self.memo("alignment", (backbone,),
                         lambda: align_face(self.photo, self.detection(), bb.crop_size, bb.template))

    def face_crop(self, backbone: str) -> FaceCrop:
        """The aligned face as the experiments take it: (name, crop, landmarks in crop px)."""
        aligned = self.aligned(backbone)
        return FaceCrop(self.name, aligned.crop, np.asarray(aligned.landmarks, np.float64))

    def crops(self, backbone: str) -> torch.Tensor:
        """The aligned crop as a float tensor [1, 3, S, S] in 0..255."""
        return crops_to_tensor([self.aligned(backbone).crop], self.device)

    def network(self, backbone: str) -> Network:
        """Trunk features, embedding and unit saliency from one forward and one backward pass."""
        def compute() -> Network:
            bb = self.backbone(backbone)
            x = self.crops(backbone).requires_grad_(True)
            with torch.enable_grad():
                feats = bb.trunk(x)
                emb = bb.head(feats)
                unit = QualityRegressionModel.from_embeddings(emb, torch.ones(1, device=self.device))
                (grad,) = torch.autograd.grad(unit.sum(), x)
            return Network(feats.detach(), emb.detach(), merge_channels(grad)[0].cpu().numpy())

        return self.memo("network", (backbone,), compute)

    def raw_quality(self, settings: Settings) -> float:
        """The estimator's raw Q (before Eq. 2) for these settings."""
        name = settings.estimator_name()

        def compute() -> float:
            est = get_estimator(name, **dict(settings.params))
            feats = self.network(settings.backbone).features
            return float(est.raw(self.backbone(settings.backbone), self.crops(settings.backbone), features=feats,
                                 seed=settings.seed)[0])

        return self.memo("quality", (settings.backbone, name, settings.params, settings.seed), compute)

    def weight(self, settings: Settings) -> float:
        """The Eq. 3 weight w = Q̂ / Σe (or Q̂ / ‖e‖₁)."""
        q_hat = settings.scaling()(torch.tensor([self.raw_quality(settings)]))
        emb = self.network(settings.backbone).embedding.cpu()
        return float(quality_weights(emb, q_hat, settings.eq3_norm())[0])

    def explain(self, settings: Settings) -> Explanation:
        """The explanation under ``settings``; Ŝ = |w| · unit saliency, P = v(Ŝ) with γ."""
        scaling = settings.scaling()
        raw = self.raw_quality(settings)
        net = self.network(settings.backbone)
        saliency = (abs(self.weight(settings)) * net.unit_saliency).astype(np.float32)
        aligned = self.aligned(settings.backbone)
        return Explanation(source=self.name, crop=aligned.crop,
                           plq=plq_from_saliency(saliency, scaling.gamma).astype(np.float32), saliency=saliency,
                           embedding=net.embedding[0].cpu().numpy(), quality=float(scaling(torch.tensor(raw))),
                           quality_raw=raw, faces_found=self.detection().faces_found, matrix=aligned.matrix,
                           backbone=settings.backbone, quality_method=settings.estimator_name(),
                           attribution="saliency", photo=self.photo)


@lru_cache(maxsize=16)
def explainer_for(settings: Settings, device: str = "cpu") -> Explainer:
    """An Explainer giving the same Q̂ and maps as ``FaceSession.explain`` (one per settings, reused)."""
    return Explainer(**settings.explainer_args(), device=device)


def explain_images(settings: Settings, images: Sequence[np.ndarray],
                   device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Q̂ [N] and PLQ maps [N, S, S] of aligned crops (uint8 [S, S, 3]) under ``settings``, one batch."""
    ex = explainer_for(settings, device)
    out = ex.explain_tensor(crops_to_tensor(list(images), ex.device))
    return out["quality"].cpu().numpy().astype(np.float64), out["plq"].cpu().numpy()


class SessionCache:
    """FaceSessions by key, so that picking a face again reuses its cached stages."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._sessions: dict[str, FaceSession] = {}

    def get(self, key: str, image: ImageLike) -> FaceSession:
        if key not in self._sessions:
            self._sessions[key] = FaceSession(image, name=key, device=self.device)
        return self._sessions[key]


def london_sessions(n: int, device: str = "cpu") -> list[FaceSession]:
    """FaceSessions of the first ``n`` London neutral photos (compliant, passport-like faces); the astronaut
    alone when the London set is absent."""
    paths = london("neutral", n)
    if not paths:
        return [FaceSession(astronaut(), name=ASTRONAUT, device=device)]
    return [FaceSession(p, device=device) for p in paths]


def pick_face(preferred: str, samples: dict[str, ImageLike] | None = None) -> str:
    """``preferred`` if it is a sample's name, else the astronaut (always available)."""
    return preferred if preferred in (samples if samples is not None else sample_images()) else ASTRONAUT


# -- plotly ---------------------------------------------------------------------------------------------------
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


def outline_trace(mask: np.ndarray, color: str = "blue", name: str = "mask") -> go.Contour:
    """The outline of a bool mask [S, S], to lay over an image or map panel."""
    return go.Contour(z=np.asarray(mask, np.float32), contours={"start": 0.5, "end": 0.5, "coloring": "none"},
                      line={"color": color, "width": 2}, showscale=False, showlegend=False, name=name,
                      hoverinfo="skip")


def image_grid(rows: Sequence[Sequence[tuple[str, go.BaseTraceType]]], title: str = "",
               panel_px: int = 210) -> go.Figure:
    """Titled panels in a grid (rows of (title, trace)), square pixels, no axes."""
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
    fig.update_layout(title={"text": title, "font": {"size": 13}}, width=panel_px * n_cols + 120, height=height,
                      margin={"l": 10, "r": 10, "t": 65, "b": 10}, plot_bgcolor="white")
    return fig


# -- tables and widgets ---------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def table_html(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A list-of-dicts table as an HTML table (floats with 4 significant digits)."""
    if not rows:
        return "<p><i>no rows</i></p>"
    cols = list(columns or rows[0])
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{_cell(r.get(c, ''))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def show_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Display a list-of-dicts table in the notebook."""
    display(HTML(table_html(rows, columns)))


def progress_bar(description: str = "faces") -> tuple[w.IntProgress, Callable[[int, int], None]]:
    """An ipywidgets progress bar and the ``progress(done, total)`` callback that moves it."""
    bar = w.IntProgress(value=0, min=0, max=1, description=description)

    def progress(done: int, total: int) -> None:
        bar.max = max(total, 1)
        bar.value = done
        bar.bar_style = "success" if done >= total else ""

    return bar, progress


def output_item(item: Any) -> dict:
    """A displayable (plotly Figure, IPython HTML, …) as a notebook output dict for ``Output.outputs``."""
    if isinstance(item, go.Figure):
        data = pio.renderers["plotly_mimetype"].to_mimebundle(item.to_dict())
    else:
        data, _ = _FORMATTER.format(item)
    return {"output_type": "display_data", "data": data, "metadata": {}}


def render_into(output: w.Output, produce: Callable[[], Sequence[Any]]) -> None:
    """Replace an Output widget's content by the items ``produce()`` returns, or by the error.

    It sets ``output.outputs`` instead of capturing with ``with output:``: that works from any callback,
    and headless executors (nbclient) have no captured output to sync back to the kernel while a cell
    runs, which can stall them.
    """
    try:
        outs = tuple(output_item(item) for item in produce())
    except Exception as exc:  # noqa: BLE001 - a widget shows the error instead of dying silently
        outs = ({"output_type": "stream", "name": "stderr", "text": f"{type(exc).__name__}: {exc}\n"},)
    output.outputs = outs


class Explorer:
    """Base of the notebooks' explorers: sample photos, their cached FaceSessions, the map settings and the
    ``widget`` to display."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                 device: str = "cpu"):
        self.samples = dict(samples if samples is not None else sample_images())
        self.base_settings = settings or default_settings()
        self.sessions = SessionCache(device)
        self.widget: w.Widget = w.VBox()

    def _ipython_display_(self) -> None:
        display(self.widget)

    def settings(self) -> Settings:
        """The settings of the maps (fixed here; the tutorial reads them from its controls)."""
        return self.base_settings


class FaceUI(Explorer):
    """An explorer of one face at a time: a face picker and an output area.

    Subclasses build their controls, call ``_finish(rows)`` and implement ``render()`` (the items to show).
    """

    def __init__(self, samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, settings, device)
        self.face = w.Dropdown(options=list(self.samples), description="face",
                               value=face if face in self.samples else next(iter(self.samples)))
        self.output = w.Output()

    def _finish(self, rows: Sequence[Sequence[w.Widget]], observe: Sequence[w.Widget] = ()) -> None:
        """Lay out the control rows above the output, redraw on every change of ``observe`` (and the face)."""
        for c in (self.face, *observe):
            c.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox(list(r)) for r in rows] + [self.output])
        self.update()

    def session(self) -> FaceSession:
        """The picked face's session (its cached stages)."""
        return self.sessions.get(self.face.value, self.samples[self.face.value])

    def render(self) -> list[Any]:
        raise NotImplementedError

    def update(self) -> None:
        """Redraw the output for the current controls."""
        render_into(self.output, self.render)
