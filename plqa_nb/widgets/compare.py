"""Notebook 2, attribution comparison: the maps of several methods side by side, their deletion and
insertion curves against a random pixel order, and a timing table (``plqa_nb.evaluation.compare_methods``)."""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w
import plotly.graph_objects as go
from IPython.display import HTML
from plotly.subplots import make_subplots

from ..attribution import available_methods, get_method
from ..attribution.baselines import REFERENCES
from ..evaluation import Comparison, compare_methods
from ..experiments.common import FaceCrop
from ..images import ImageLike
from ..backbones.base import crops_to_tensor
from ..config import ModelConfig
from ..pipeline import FaceAnalysis, cached_explainer
from .display import progress_bar, render_into, table_html
from .explorer import Explorer
from .plotting import image_grid, plq_trace, rgb_trace
from .settings import quick

DEFAULT_METHODS = ("saliency", "smoothgrad", "integrated-gradients", "occlusion", "grad-cam")


def run_comparison(sessions: Sequence[FaceAnalysis], config: ModelConfig, methods: Sequence[str], steps: int = 20,
                   filler: str = "black", n_random: int = 3, infidelity_samples: int = 0, road: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[FaceCrop], Comparison]:
    """Align the faces, then ``compare_methods`` on them (with ``road``, also ROAD's MoRF and LeRF curves);
    ``progress(done, total)`` after each face and at the end.

    Returns the aligned faces and the Comparison (maps, curves, AUCs and seconds per face of each method).
    """
    total = len(sessions) + 1
    faces = []
    for i, session in enumerate(sessions, 1):
        faces.append(session.face_crop(config.backbone))
        if progress is not None:
            progress(i, total)
    explainer = cached_explainer(config, device=str(sessions[0].device))
    result = compare_methods(explainer, crops_to_tensor([f.crop for f in faces], explainer.device), list(methods),
                             names=[f.name for f in faces], steps=steps, filler=filler, n_random=n_random,
                             seed=config.seed, infidelity_samples=infidelity_samples, road=road)
    if progress is not None:
        progress(total, total)
    return faces, result


def method_maps_figure(faces: Sequence[FaceCrop], comparison: Comparison) -> go.Figure:
    """One row per face: the crop, then each method's map in [0, 1] (PLQ or rank view) with its deletion (D)
    and insertion (I) AUC."""
    rows = []
    for b, face in enumerate(faces):
        row = [(f"{face.name}<br>Q̂ {float(comparison.quality[b]):.3f}, "
                f"random D {float(comparison.random_deletion_auc[b]):.2f} "
                f"I {float(comparison.random_insertion_auc[b]):.2f}", rgb_trace(face.crop))]
        for j, (name, res) in enumerate(comparison.methods.items()):
            row.append((f"{name} ({get_method(name).view})<br>D {float(res.deletion_auc[b]):.2f} "
                        f"I {float(res.insertion_auc[b]):.2f}",
                        plq_trace(res.view[b].cpu().numpy(), colorbar=b == 0 and j == 0)))
        rows.append(row)
    fig = image_grid(rows, title="Maps side by side (D: deletion AUC, lower is better; I: insertion AUC, higher is "
                                 "better)", panel_px=170)
    fig.update_annotations(font_size=9)
    return fig


def curves_figure(comparison: Comparison) -> go.Figure:
    """Mean deletion and insertion curves (Q̂ against the fraction of pixels changed) per method, random dashed."""
    x = comparison.fractions.cpu().numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=["deletion (lower is better)",
                                                        "insertion from blur (higher is better)"])
    curves = {name: (r.deletion, r.insertion) for name, r in comparison.methods.items()}
    curves["random"] = (comparison.random_deletion, comparison.random_insertion)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    for k, (name, pair) in enumerate(curves.items()):
        style = {"dash": "dash", "color": "black"} if name == "random" else {"color": palette[k % len(palette)]}
        for col, curve in enumerate(pair, 1):
            fig.add_trace(go.Scatter(x=x, y=curve.mean(0).cpu().numpy(), mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=col == 1, line=style), row=1, col=col)
    fig.update_xaxes(title_text="fraction of pixels changed")
    fig.update_yaxes(title_text="mean scaled quality", col=1)
    fig.update_layout(title=f"Faithfulness over {len(comparison.quality)} face(s)", height=400,
                      margin={"l": 50, "r": 10, "t": 70, "b": 50})
    return fig


def timing_table(comparison: Comparison) -> list[dict]:
    """Per method: view, seconds per face (attribution alone, and with its curves and metrics), mean AUCs and
    the share of faces where it beats the random order (deletion AUC below, insertion AUC above); with ROAD, the
    mean MoRF (lower is better) and LeRF (higher is better) areas."""
    rows = []
    for name, r in comparison.methods.items():
        row = {"method": name, "view": get_method(name).view, "attribution_s": r.attribution_seconds,
               "total_s": r.seconds, "deletion_auc": float(r.deletion_auc.mean()),
               "insertion_auc": float(r.insertion_auc.mean()),
               **{f"beats_random_{kind}": float(b.float().mean())
                  for kind, b in zip(("deletion", "insertion"), comparison.beats_random(name))}}
        if r.road_morf_auc is not None:
            row.update(road_morf_auc=float(r.road_morf_auc.mean()), road_lerf_auc=float(r.road_lerf_auc.mean()))
        if r.infidelity is not None:
            row["infidelity"] = float(r.infidelity.mean())
        rows.append(row)
    rows.append({"method": "random", "view": "", "attribution_s": 0.0, "total_s": float("nan"),
                 "deletion_auc": float(comparison.random_deletion_auc.mean()),
                 "insertion_auc": float(comparison.random_insertion_auc.mean()),
                 "beats_random_deletion": float("nan"), "beats_random_insertion": float("nan"),
                 **({"road_morf_auc": float(comparison.random_road_morf_auc.mean()),
                     "road_lerf_auc": float(comparison.random_road_lerf_auc.mean())}
                    if comparison.random_road_morf_auc is not None else {})})
    return rows


class CompareUI(Explorer):
    """Choose faces, methods, curve steps, filler and random orders; the button runs ``run_comparison`` with a
    progress bar and shows the maps, the curves and the timing table; ``last`` keeps (faces, Comparison)."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu"):
        super().__init__(samples, config, device)
        names = list(self.samples)
        london = [n for n in names if n.startswith("london neutral")] or names
        self.faces = w.SelectMultiple(options=names, value=london[:quick(4, 2)], rows=6, description="faces")
        methods = available_methods()
        self.methods = w.SelectMultiple(options=methods, rows=6, description="methods",
                                        value=[m for m in DEFAULT_METHODS if m in methods][:quick(5, 2)])
        self.steps = w.IntSlider(value=quick(20, 4), min=2, max=100, description="steps")
        self.filler = w.Dropdown(options=list(REFERENCES), description="filler")
        self.n_random = w.IntSlider(value=quick(3, 1), min=1, max=10, description="random orders",
                                    style={"description_width": "initial"})
        self.button = w.Button(description="compare", button_style="primary")
        self.bar, self._progress = progress_bar("faces")
        self.output = w.Output()
        self.last: tuple[list[FaceCrop], Comparison] | None = None
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.faces, self.methods]), w.HBox([self.steps, self.filler, self.n_random]),
                              w.HBox([self.button, self.bar]), self.output])

    def run(self) -> None:
        """Compare the chosen methods on the chosen faces and show the results."""
        def produce() -> list:
            sessions = [self.sessions.get(n, self.samples[n]) for n in self.faces.value]
            self.last = run_comparison(sessions, self.config(), self.methods.value, self.steps.value,
                                       self.filler.value, self.n_random.value, progress=self._progress)
            faces, result = self.last
            return [method_maps_figure(faces, result), curves_figure(result), HTML(table_html(timing_table(result)))]

        render_into(self.output, produce)


def build_compare_ui(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                     device: str = "cpu") -> CompareUI:
    """The comparison explorer (display it as the last expression of a cell; press "compare")."""
    return CompareUI(samples, config, device)
