"""Notebook 5, ICAO-style violations: choose a violation and its strength for a compliant face; see the PLQ
map, the quality change, the mean PLQ per face region and the feedback in words.

The violations are ``plqa_nb.experiments.icao``'s. Strength s in [0, 1] blends the compliant crop with the
full violation, (1 − s)·crop + s·violation: for occluders it is their opacity, for lighting, blur, noise
and JPEG a partial effect; for the roll (a geometric change) it gives a double image, so use s = 1 there.
"""
from __future__ import annotations

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML

from ..config import ModelConfig
from ..experiments import icao
from ..experiments.common import Panel, stands_out
from ..regions import REGIONS
from ..images import ImageLike
from ..pipeline import FaceAnalysis, cached_explainer
from .display import table_html
from .explorer import FaceUI
from .plotting import LEGEND, image_grid, outline_flagged, outline_trace, plq_trace, rgb_trace, stands_out_panel


def icao_variant(session: FaceAnalysis, config: ModelConfig, violation: str, strength: float = 1.0) -> icao.Variant:
    """The face with ``violation`` (a name of ``icao.VIOLATIONS``) at ``strength`` in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], not {strength}")
    face = session.face_crop(config.backbone)
    full = icao.make_variants(face, [violation], config.seed)[0]
    image = ((1 - strength) * face.crop.astype(np.float32) + strength * full.image).round().astype(np.uint8)
    return icao.Variant(full.name, full.category, image, full.landmarks, full.occluder)


def _measured(session: FaceAnalysis, config: ModelConfig, violation: str,
              strength: float) -> tuple[icao.Variant, list[dict], list[Panel]]:
    """The variant and ``icao.measure``'s rows and panels (the compliant reference first), cached."""
    def compute() -> tuple[icao.Variant, list[dict], list[Panel]]:
        variant = icao_variant(session, config, violation, strength)
        face = session.face_crop(config.backbone)
        res = icao.measure(cached_explainer(config, device=str(session.device)),
                           [icao.variant_entry(face, variant)], face)
        return variant, res.rows, res.panels

    return session.memo("icao", (config, violation, float(strength)), compute)


def region_table(session: FaceAnalysis, config: ModelConfig, violation: str, strength: float = 1.0) -> list[dict]:
    """Mean PLQ per region, compliant and with the violation: rows with region, plq_reference, plq_violation,
    plq_lost (reference − violation: positive = worse, the sign of every table) and covered ('yes' where the
    occluder covers ≥ 40 % of the region)."""
    _, (ref, row), _ = _measured(session, config, violation, strength)
    covered = row["affected_region"].split("+")
    return [{"region": k, "plq_reference": ref[f"plq_{k}"], "plq_violation": row[f"plq_{k}"],
             "plq_lost": ref[f"plq_{k}"] - row[f"plq_{k}"], "covered": "yes" if k in covered else ""}
            for k in REGIONS + ("face",)]


def violation_summary(session: FaceAnalysis, config: ModelConfig, violation: str, strength: float = 1.0) -> dict:
    """Q̂ of the compliant face and with the violation, Δ_Q̂ = Q̂_ref − Q̂ (positive: worse), the region that
    stands out against compliant faces (flagged_region, "" when none does), the worst face region, the region
    that lost most against the compliant photo and the feedback sentence."""
    _, (_, row), _ = _measured(session, config, violation, strength)
    keys = ("violation", "category", "quality_ref", "quality", "quality_lost", "flagged_region", "worst_region",
            "degraded_region", "feedback")
    return {"strength": strength, **{k: row[k] for k in keys}}


def icao_figure(session: FaceAnalysis, config: ModelConfig, violation: str, strength: float = 1.0) -> go.Figure:
    """Compliant (top) and violated crop (bottom), each with its PLQ map ("what each pixel is worth") and, where the
    backbone has a compliant-face norm, its deviation map ("what stands out"); the occluder outlined on the
    violated PLQ map, the flagged part (``plotting.FLAGGED``) on the photo and on the deviation map; Δ_Q̂ in the
    title."""
    variant, _, (ref, panel) = _measured(session, config, violation, strength)
    explainer = cached_explainer(config, device=str(session.device))
    face = session.face_crop(config.backbone)
    looks = [stands_out(explainer, ref.image, face.landmarks), stands_out(explainer, panel.image, variant.landmarks)]
    rows = []
    for label, p, look in (("compliant", ref, looks[0]), (f"{violation} ×{strength:g}", panel, looks[1])):
        row = [(f"{label}, Q̂ = {p.quality:.3f}", rgb_trace(p.image)),
               (f"PLQ {label}", plq_trace(p.plq, colorbar=p is ref))]
        if look.deviation is not None:
            row.append(stands_out_panel(look))
        rows.append(row)
    fig = image_grid(rows, title=f"{session.name}: quality lost Δ_Q̂ = {ref.quality - panel.quality:+.3f}",
                     panel_px=240)
    if variant.occluder is not None:
        fig.add_trace(outline_trace(variant.occluder, "black", "occluder"), row=2, col=2)
    for r, look in enumerate(looks, start=1):
        outline_flagged(fig, look, row=r)
    return fig


def all_violations(session: FaceAnalysis, config: ModelConfig) -> list[dict]:
    """``icao.run`` on this face: one row per violation at full strength, the reference first (cached)."""
    return session.memo("icao_all", (config,), lambda: icao.run(
        cached_explainer(config, device=str(session.device)), [session.face_crop(config.backbone)])[0].rows)


def localization_table(session: FaceAnalysis, config: ModelConfig, methods: tuple[str, ...]) -> list[dict]:
    """Does each map point at the occluder? ``icao.measure`` on this face's four occlusions with ``methods``
    (``evaluation.localization``): per method, its mean mask AUC (0.5 = chance), relevance mass against its
    chance level, region hit and the mask AUC per occluder; the map that drives the feedback first (cached)."""
    from ..evaluation import localization

    def compute() -> list[dict]:
        face = session.face_crop(config.backbone)
        entries = [icao.variant_entry(face, v) for v in icao.make_variants(face, "occlusion", config.seed)]
        res = icao.measure(cached_explainer(config, device=str(session.device)), entries, face, config.seed,
                           reference_row=False, methods=methods)
        return localization.summary(res.localization)

    return session.memo("localization", (config, tuple(methods)), compute)


def violations_figure(rows: list[dict]) -> go.Figure:
    """Δ_Q̂ per violation (bars coloured by category); positive = lower quality than the compliant photo."""
    rows = [r for r in rows if r["violation"] != "reference"]
    fig = go.Figure()
    for cat in icao.CATEGORIES:
        sel = [r for r in rows if r["category"] == cat]
        if sel:
            fig.add_trace(go.Bar(x=[r["violation"] for r in sel], y=[r["quality_lost"] for r in sel], name=cat,
                                 customdata=[r["worst_region"] for r in sel],
                                 hovertemplate="%{x}: Δ_Q̂ %{y:.3f}, worst region %{customdata}<extra></extra>"))
    fig.update_layout(title=f"{rows[0]['file'] if rows else ''}: Δ_Q̂ = Q̂_ref − Q̂ per violation",
                      yaxis_title="quality lost", height=380, margin={"l": 50, "r": 10, "t": 50, "b": 90})
    return fig


class IcaoUI(FaceUI):
    """A face, a violation and its strength; shows ``icao_figure``, the summary with the feedback in words and
    ``region_table``."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, config, device, face)
        self.violation = w.Dropdown(options=list(icao.VIOLATIONS), description="violation")
        self.strength = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.1, description="strength",
                                      continuous_update=False)
        self._finish([[self.violation, self.strength]], observe=[self.violation, self.strength])

    def render(self) -> list:
        args = (self.session(), self.config(), self.violation.value, self.strength.value)
        summary = violation_summary(*args)
        return [HTML(f"<p><b>Feedback:</b> {summary['feedback']}</p>"), icao_figure(*args), HTML(LEGEND),
                HTML(table_html([summary], [k for k in summary if k != "feedback"])),
                HTML(table_html(region_table(*args)))]


def build_icao_ui(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                  device: str = "cpu", face: str | None = None) -> IcaoUI:
    """The ICAO explorer (display it as the last expression of a cell)."""
    return IcaoUI(samples, config, device, face)
