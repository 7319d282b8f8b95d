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

from ..experiments import icao
from ..experiments.feedback import feedback
from ..experiments.regions import REGIONS, covered_regions, region_masks, region_means, worst_region
from ..images import ImageLike
from .common import (FaceSession, FaceUI, Settings, explain_images, explainer_for, image_grid, outline_trace,
                     plq_trace, rgb_trace, table_html)


def icao_variant(session: FaceSession, settings: Settings, violation: str, strength: float = 1.0) -> icao.Variant:
    """The face with ``violation`` (a name of ``icao.VIOLATIONS``) at ``strength`` in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], not {strength}")
    face = session.face_crop(settings.backbone)
    full = icao.make_variants(face, [violation], settings.seed)[0]
    image = ((1 - strength) * face.crop.astype(np.float32) + strength * full.image).round().astype(np.uint8)
    return icao.Variant(full.name, full.category, image, full.landmarks, full.occluder)


def _explained(session: FaceSession, settings: Settings, violation: str,
               strength: float) -> tuple[icao.Variant, float, np.ndarray]:
    def compute() -> tuple[icao.Variant, float, np.ndarray]:
        variant = icao_variant(session, settings, violation, strength)
        q, plq = explain_images(settings, [variant.image], str(session.device))
        return variant, float(q[0]), plq[0]

    return session.memo("icao", (settings, violation, float(strength)), compute)


def region_table(session: FaceSession, settings: Settings, violation: str, strength: float = 1.0) -> list[dict]:
    """Mean PLQ per region, compliant and with the violation: rows with region, plq_reference, plq_violation,
    difference (violation − reference) and covered ('yes' where the occluder covers ≥ 40 % of the region)."""
    ref = session.explain(settings)
    variant, _, plq = _explained(session, settings, violation, strength)
    face = session.face_crop(settings.backbone)
    ref_masks = region_masks(face.landmarks, ref.plq.shape[0])
    before = region_means(ref.plq, ref_masks)
    after = region_means(plq, region_masks(variant.landmarks, plq.shape[0]))
    covered = covered_regions(variant.occluder, ref_masks) if variant.occluder is not None else []
    return [{"region": k, "plq_reference": before[k], "plq_violation": after[k], "difference": after[k] - before[k],
             "covered": "yes" if k in covered else ""} for k in REGIONS + ("face",)]


def violation_summary(session: FaceSession, settings: Settings, violation: str, strength: float = 1.0) -> dict:
    """Q̂ of the compliant face and with the violation, Δ_Q̂ = Q̂_ref − Q̂ (positive: worse), the worst
    face region and the feedback sentence."""
    ref = session.explain(settings)
    variant, q, plq = _explained(session, settings, violation, strength)
    means = region_means(plq, region_masks(variant.landmarks, plq.shape[0]))
    return {"violation": violation, "category": variant.category, "strength": strength, "quality_ref": ref.quality,
            "quality": q, "delta_q": ref.quality - q, "worst_region": worst_region(means),
            "feedback": feedback(means, q)}


def icao_figure(session: FaceSession, settings: Settings, violation: str, strength: float = 1.0) -> go.Figure:
    """Compliant and violated crop over their PLQ maps (the occluder outlined), Δ_Q̂ in the title."""
    ref = session.explain(settings)
    variant, q, plq = _explained(session, settings, violation, strength)
    fig = image_grid([[(f"compliant, Q̂ = {ref.quality:.3f}", rgb_trace(ref.crop)),
                       (f"{violation} ×{strength:g}, Q̂ = {q:.3f}", rgb_trace(variant.image))],
                      [("PLQ compliant", plq_trace(ref.plq)), (f"PLQ {violation}", plq_trace(plq, colorbar=False))]],
                     title=f"{session.name}: Δ_Q̂ = {ref.quality - q:+.3f}", panel_px=240)
    if variant.occluder is not None:
        fig.add_trace(outline_trace(variant.occluder, "blue", "occluder"), row=2, col=2)
    return fig


def all_violations(session: FaceSession, settings: Settings) -> list[dict]:
    """``icao.run`` on this face: one row per violation at full strength, the reference first (cached)."""
    return session.memo("icao_all", (settings,), lambda: icao.run(
        explainer_for(settings, str(session.device)), [session.face_crop(settings.backbone)])[0].rows)


def violations_figure(rows: list[dict]) -> go.Figure:
    """Δ_Q̂ per violation (bars coloured by category); positive = lower quality than the compliant photo."""
    rows = [r for r in rows if r["violation"] != "reference"]
    fig = go.Figure()
    for cat in icao.CATEGORIES:
        sel = [r for r in rows if r["category"] == cat]
        if sel:
            fig.add_trace(go.Bar(x=[r["violation"] for r in sel], y=[r["delta_q"] for r in sel], name=cat,
                                 customdata=[r["worst_region"] for r in sel],
                                 hovertemplate="%{x}: Δ_Q̂ %{y:.3f}, worst region %{customdata}<extra></extra>"))
    fig.update_layout(title=f"{rows[0]['file'] if rows else ''}: Δ_Q̂ = Q̂_ref − Q̂ per violation",
                      yaxis_title="Δ_Q̂", width=900, height=380, margin={"l": 50, "r": 10, "t": 50, "b": 90})
    return fig


class IcaoUI(FaceUI):
    """A face, a violation and its strength; shows ``icao_figure``, the summary with the feedback in words and
    ``region_table``."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, settings, device, face)
        self.violation = w.Dropdown(options=list(icao.VIOLATIONS), description="violation")
        self.strength = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.1, description="strength",
                                      continuous_update=False)
        self._finish([[self.face], [self.violation, self.strength]], observe=[self.violation, self.strength])

    def render(self) -> list:
        args = (self.session(), self.settings(), self.violation.value, self.strength.value)
        summary = violation_summary(*args)
        return [icao_figure(*args), HTML(f"<p><b>Feedback:</b> {summary['feedback']}</p>"),
                HTML(table_html([summary], [k for k in summary if k != "feedback"])),
                HTML(table_html(region_table(*args)))]


def build_icao_ui(samples: dict[str, ImageLike] | None = None, settings: Settings | None = None,
                  device: str = "cpu", face: str | None = None) -> IcaoUI:
    """The ICAO explorer (display it as the last expression of a cell)."""
    return IcaoUI(samples, settings, device, face)
