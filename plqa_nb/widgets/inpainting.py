"""Notebook 3, inpainting (paper Sec. V-A): pick a face, set the mask from the explanation, by a threshold on its
PLQ map or by a rectangle, fill it (``inpainting.FILLS``), and compare Q̂ (mean ± std over estimator seeds) and
the PLQ maps before and after."""
from __future__ import annotations

import hashlib

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML

from ..experiments import inpainting
from ..experiments.common import FaceResult
from ..images import ImageLike
from ..config import ModelConfig
from ..pipeline import FaceAnalysis, cached_explainer
from .display import render_into, table_html
from .explorer import FaceUI
from .plotting import image_grid, outline_trace, plq_trace, rgb_trace
from .settings import quick

DEFAULT_LEVEL = 0.7  # the threshold mask's level in the notebook and the explorer (0.5 leaves most faces unmasked)


def threshold_mask(session: FaceAnalysis, config: ModelConfig, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Low-PLQ regions of the face (``inpainting.plq_mask`` at ``level`` × the face's median PLQ), bool [S, S]."""
    face = session.face_crop(config.backbone)
    return inpainting.plq_mask(session.explain(config).plq, face.landmarks, level=level)


def explanation_mask(session: FaceAnalysis, config: ModelConfig) -> np.ndarray:
    """What the explanation blames (``inpainting.explanation_mask``, ``--mask-from plq`` of the verb), bool
    [S, S]; cached."""
    from ..experiments.common import counterfactual_maps, deviation_maps

    def compute() -> np.ndarray:
        face = session.face_crop(config.backbone)
        explainer = cached_explainer(config, device=str(session.device))
        defect = counterfactual_maps(explainer, [face.crop])
        if defect is None:
            raise ValueError(f"no compliant-face norm for {config.backbone}: run plqa calibrate")
        return inpainting.explanation_mask(defect[0], deviation_maps(explainer, [face.crop])[0], face.landmarks,
                                           explainer.compliant_norm().features)

    return session.memo("explanation_mask", (config,), compute)


def rectangle_mask(size: int, x: int, y: int, width: int, height: int) -> np.ndarray:
    """bool [size, size], True in the rectangle with top-left (x, y) (crop px)."""
    mask = np.zeros((size, size), bool)
    mask[y:y + height, x:x + width] = True
    return mask


def filled(session: FaceAnalysis, config: ModelConfig, mask: np.ndarray, method: str) -> np.ndarray:
    """The face's crop with ``mask`` filled by ``method`` (one of ``inpainting.FILLS``)."""
    face = session.face_crop(config.backbone)
    explainer = cached_explainer(config, device=str(session.device))
    mean_face = explainer.compliant_norm().face(face.crop.shape[0]).permute(1, 2, 0).round().byte().numpy() \
        if explainer.has_compliant_norm else None
    return inpainting.fill(face.crop, mask, method, face.landmarks, mean_face)


def mask_figure(session: FaceAnalysis, config: ModelConfig, mask: np.ndarray,
                method: str = inpainting.DEFAULT_FILL) -> go.Figure:
    """Preview (no quality computed): the crop, its PLQ map with the mask outlined, the inpainted crop."""
    res = session.explain(config)
    fig = image_grid([[("aligned crop", rgb_trace(res.crop)), (f"PLQ, Q̂ = {res.quality:.3f}", plq_trace(res.plq)),
                       (f"filled ({method})", rgb_trace(filled(session, config, mask, method)))]],
                     title=f"{session.name}: mask covers {mask.mean():.1%} of the crop")
    for col in (1, 2):
        fig.add_trace(outline_trace(mask), row=1, col=col)
    return fig


def inpainting_result(session: FaceAnalysis, config: ModelConfig, mask: np.ndarray,
                      method: str = inpainting.DEFAULT_FILL,
                      repeats: int = 10) -> FaceResult:
    """``plqa_nb.experiments.inpainting.run`` on this face with ``mask`` (cached per mask, method, repeats)."""
    key = (config, hashlib.sha1(np.packbits(mask)).hexdigest(), mask.shape, method, repeats)
    return session.memo("inpainting", key, lambda: inpainting.run(
        cached_explainer(config, device=str(session.device)), [session.face_crop(config.backbone)], [mask], method,
        repeats, mask_from="user")[0])


def before_after_table(result: FaceResult) -> list[dict]:
    """Rows before/after: Q̂ mean and std over the seeds, mean PLQ inside the mask, and the change
    ('up' / 'down' beyond one std, else 'within')."""
    row = result.rows[0]
    return [{"image": p.label, "quality": row[f"quality_{p.label}"], "quality_std": row[f"quality_{p.label}_std"],
             "plq_in_mask": float(p.plq[result.mask].mean()) if result.mask.any() else float("nan"),
             "change": row["change"] if p.label == "after" else ""} for p in result.panels]


def same_for_every_seed(result: FaceResult) -> bool:
    """True when the estimator gave one Q̂ for every seed, before and after (a deterministic estimator, or one
    repeat): there is no spread, so "beyond one std" means any change."""
    row = result.rows[0]
    return row["quality_before_std"] == 0 and row["quality_after_std"] == 0


def quality_text(mean: float, std: float, spread: bool) -> str:
    """"Q̂ = 0.812 ± 0.004" when the seeds spread, else "Q̂ = 0.812"."""
    return f"Q̂ = {mean:.3f}" + (f" ± {std:.3f}" if spread else "")


def before_after_figure(result: FaceResult) -> go.Figure:
    """The crop and its PLQ map before and after inpainting (mask outlined), Q̂ (± std over the seeds when
    they differ) in the titles."""
    row = result.rows[0]
    spread = not same_for_every_seed(result)
    cells = [[(f"{p.label}: {quality_text(row[f'quality_{p.label}'], row[f'quality_{p.label}_std'], spread)}",
               rgb_trace(p.image)) for p in result.panels],
             [(f"PLQ {p.label}", plq_trace(p.plq, colorbar=i == 0)) for i, p in enumerate(result.panels)]]
    fig = image_grid(cells, title=f"{result.file}: Q̂ {row['change']} after inpainting ({row['fill']}, "
                                  f"{row['masked_fraction']:.1%} of the crop)")
    for col in (1, 2):
        fig.add_trace(outline_trace(result.mask), row=2, col=col)
    return fig


class InpaintingUI(FaceUI):
    """Mask by PLQ threshold or rectangle with a live preview (the other mode's sliders disabled); the button
    inpaints and scores (``repeats`` estimator seeds), showing ``before_after_figure`` and
    ``before_after_table``; any change of the mask clears that result."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, config, device, face)
        s = self.config().crop_size
        self.mode = w.ToggleButtons(options=["PLQ threshold", "rectangle"], description="mask")
        self.level = w.FloatSlider(value=DEFAULT_LEVEL, min=0.05, max=1.0, step=0.05, description="level",
                                   continuous_update=False)
        self.rect = [w.IntSlider(value=v, min=0, max=s, description=d, continuous_update=False)
                     for v, d in ((s // 4, "x"), (s // 4, "y"), (s // 2, "width"), (s // 6, "height"))]
        self.method = w.Dropdown(options=inpainting.FILLS, description="fill")
        self.repeats = w.IntSlider(value=quick(10, 3), min=1, max=20, description="repeats", continuous_update=False)
        self.button = w.Button(description="inpaint and score", button_style="primary")
        self.result_out = w.Output()
        self.button.on_click(lambda _: self.evaluate())
        self._finish([[self.mode], [self.level], self.rect, [self.method, self.repeats, self.button]],
                     observe=[self.mode, self.level, self.method, *self.rect])
        self.widget.children += (self.result_out,)

    def mask(self) -> np.ndarray:
        """The mask the controls describe."""
        if self.mode.value == "rectangle":
            return rectangle_mask(self.config().crop_size, *(r.value for r in self.rect))
        return threshold_mask(self.session(), self.config(), self.level.value)

    def render(self) -> list:
        return [mask_figure(self.session(), self.config(), self.mask(), self.method.value)]

    def update(self) -> None:
        """Enable the active mode's sliders only, clear the result of an older mask, redraw the preview."""
        rectangle = self.mode.value == "rectangle"
        self.level.disabled = rectangle
        for slider in self.rect:
            slider.disabled = not rectangle
        self.result_out.outputs = ()
        super().update()

    def evaluate(self) -> None:
        """Inpaint and score the current mask."""
        def produce() -> list:
            res = inpainting_result(self.session(), self.config(), self.mask(), self.method.value,
                                    self.repeats.value)
            note = ([HTML("<p><i>This estimator gives the same Q̂ for every seed: there is no spread, so any "
                          "difference counts as up or down.</i></p>")] if same_for_every_seed(res) else [])
            return [before_after_figure(res), HTML(table_html(before_after_table(res))), *note]

        render_into(self.result_out, produce)


def build_inpainting_ui(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                        device: str = "cpu", face: str | None = None) -> InpaintingUI:
    """The inpainting explorer (display it as the last expression of a cell)."""
    return InpaintingUI(samples, config, device, face)
