"""Notebook 6, quality as recognition utility: the error-versus-discard characteristic (ERC) of the quality
estimators on the shipped photos, and whether Q̂ reads as the probability of a match.

``run_utility_evaluation`` is ``plqa evaluate erc`` in memory on London identities: the smiling photo as the
reference, the neutral one clean and degraded at random (``evaluation.pairs.probe_photos``) as probes; every
pair within an identity is genuine, every other pair an impostor. The figures and tables only show its result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML

from ..backbones import DEFAULT_BACKBONE, load_backbone
from ..backbones.base import crops_to_tensor
from ..config import resolve_config
from ..data import faces_dir, london
from ..errors import InputError
from ..evaluation import erc
from ..evaluation.pairs import cosine_scores, evaluate_images, face_scores, probe_photos
from ..quality import available_estimators
from ..stages import prepare_face
from .display import progress_bar, render_into, table_html
from .settings import quick


@dataclass
class UtilityRun:
    """The result of ``run_utility_evaluation``: ERCs (the estimators, random, oracle); per estimator the Q̂ of
    every genuine pair [G] and whether it matched [G]; one row per image (identity, file, kind, level, Q̂ of each
    estimator); the files that failed detection."""

    results: list[erc.ErcResult]
    pair_quality: dict[str, np.ndarray]
    matched: np.ndarray
    images: list[dict]
    failed: list[str]


def run_utility_evaluation(identities: int = 20, probes: int = 4, estimators: Sequence[str] = ("utility", "ers"),
                           seed: int = 0, fmr: float = 1e-3, backbone: str = DEFAULT_BACKBONE, device: str = "cpu",
                           progress: Callable[[int, int], None] | None = None) -> UtilityRun:
    """ERCs of ``estimators`` on the first ``identities`` London identities: per identity the smiling photo, the
    neutral one and ``probes`` degraded copies of it (seeded), each estimator with its shipped utility
    calibration. ``progress(done, total)`` after each identity."""
    names = [p.stem for p in london("neutral") if (p.parent.parent / "smiling" / p.name).exists()][:identities]
    if len(names) < 2:
        raise ValueError(f"the London set is needed (found {len(names)} identities in {faces_dir()})")
    root = london("neutral")[0].parent.parent
    net = load_backbone(backbone, device)
    configs = {n: resolve_config(backbone, n, seed=seed) for n in estimators}
    embeddings, identity, raw, q_hat, images, failed = [], [], {n: [] for n in estimators}, {n: [] for n in estimators}, \
        [], []
    photos = probe_photos([(n, root / "smiling" / f"{n}.jpg", root / "neutral" / f"{n}.jpg") for n in names],
                          seed=seed, probes=probes, clean_probe=True)
    per_identity = probes + 2
    for k, (name, file, kind, level, _, photo) in enumerate(photos, 1):
        try:
            crop = prepare_face(photo, net, device).aligned.crop
        except InputError:
            failed.append(f"{name}/{file}")
            continue
        emb, r, q = face_scores(net, configs, crops_to_tensor([crop], device), seed)
        embeddings.append(emb[0])
        identity.append(name)
        for n in estimators:
            raw[n].append(r[n][0])
            q_hat[n].append(q[n][0])
        images.append({"identity": name, "file": file, "kind": kind, "level": level,
                       **{f"quality_{n}": float(q[n][0]) for n in estimators}})
        if progress is not None and k % per_identity == 0:
            progress(k // per_identity, len(names))
    ident = np.array(identity)
    a, b = np.triu_indices(len(ident), 1)
    genuine = ident[a] == ident[b]
    e = np.stack(embeddings)
    q = {n: np.array(v) for n, v in q_hat.items()}
    results = evaluate_images(e, {n: np.array(v) for n, v in raw.items()}, q, a, b, genuine, fmr, "fixed", seed)
    scores = cosine_scores(e, a[genuine], b[genuine])
    return UtilityRun(results=results, pair_quality={n: erc.pair_quality(v[a], v[b])[genuine] for n, v in q.items()},
                      matched=scores >= results[0].threshold, images=images, failed=failed)


def erc_figure(run: UtilityRun) -> go.Figure:
    """FNMR against the share of comparisons discarded, lowest pair quality first (fixed threshold)."""
    fig = erc.erc_plotly(run.results)
    lines = fig.layout.title.text.count("<br>") + 1
    fig.update_layout(height=430 + 20 * (lines - 1), margin={"l": 60, "r": 10, "t": 40 + 20 * lines, "b": 50})
    return fig


def reliability_figure(run: UtilityRun, bins: int = 10) -> go.Figure:
    """Calibration: the genuine pairs in ``bins`` equal-width bins of pair Q̂, the share that matched against the
    bin's mean Q̂ (on the diagonal when Q̂ is the probability of a match); marker size ∝ pairs in the bin."""
    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                line={"color": "grey", "dash": "dot"})])
    for r in run.results:
        if r.method not in run.pair_quality:
            continue
        rows = erc.reliability(run.pair_quality[r.method], run.matched, bins)
        fig.add_trace(go.Scatter(x=[x["mean_quality"] for x in rows], y=[x["match_rate"] for x in rows],
                                 mode="lines+markers", name=f"{r.method} (ECE {r.ece:.3f})",
                                 marker={"size": [6 + 24 * np.sqrt(x["share"]) for x in rows]},
                                 customdata=[x["pairs"] for x in rows],
                                 hovertemplate="mean Q̂ %{x:.2f}: %{y:.0%} matched (%{customdata} pairs)<extra></extra>"))
    fig.update_layout(title={"text": "Does Q̂ read as the probability of a match? (genuine pairs, FMR "
                                     f"{run.results[0].fmr:g})", "font": {"size": 12}},
                      xaxis_title="pair quality Q̂ (the lower of the two)", yaxis_title="share matched",
                      xaxis_range=[-0.02, 1.02], yaxis_range=[-0.02, 1.02], width=560, height=460,
                      template="plotly_white", margin={"l": 60, "r": 10, "t": 60, "b": 50})
    return fig


def summary_table(run: UtilityRun) -> list[dict]:
    """Per method: genuine and impostor pairs, FNMR with 0 / 10 / 20 % discarded, pAUC up to 20 % and ECE."""
    keys = ("quality_method", "genuine", "impostor", "fnmr_reject_0", "fnmr_reject_10", "fnmr_reject_20", "pauc_20",
            "ece")
    return [{k: row[k] for k in keys} for row in erc.summary_rows(run.results)]


def kinds_table(run: UtilityRun) -> list[dict]:
    """Per kind of probe (reference, clean, each degradation and level): images and the median Q̂ of each
    estimator."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in run.images:
        groups.setdefault((row["kind"], row["level"]), []).append(row)
    names = [r.method for r in run.results if r.method in run.pair_quality]
    return [{"kind": kind, "level": level, "images": len(rows),
             **{f"median Q̂ {n}": float(np.median([r[f"quality_{n}"] for r in rows])) for n in names}}
            for (kind, level), rows in sorted(groups.items())]


class UtilityUI:
    """Choose estimators, identities and degraded probes per identity; the button runs
    ``run_utility_evaluation`` and shows the ERC, the calibration and the tables; ``last`` keeps the run."""

    def __init__(self):
        self.estimators = w.SelectMultiple(options=available_estimators(), value=("utility", "ers"), rows=4,
                                           description="estimators")
        self.identities = w.IntSlider(value=quick(20, 6), min=4, max=102, description="identities",
                                      continuous_update=False)
        self.probes = w.IntSlider(value=quick(4, 2), min=1, max=10, description="probes",
                                  continuous_update=False)
        self.button = w.Button(description="evaluate", button_style="primary")
        self.bar, self._progress = progress_bar("identities")
        self.output = w.Output()
        self.last: UtilityRun | None = None
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([self.estimators, w.VBox([self.identities, self.probes])]),
                              w.HBox([self.button, self.bar]), self.output])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def run(self) -> None:
        """Evaluate and show the results."""
        def produce() -> list:
            self.last = run_utility_evaluation(self.identities.value, self.probes.value, self.estimators.value,
                                               progress=self._progress)
            return [erc_figure(self.last), reliability_figure(self.last), HTML(table_html(summary_table(self.last)))]

        render_into(self.output, produce)


def build_utility_ui() -> UtilityUI:
    """The utility explorer (display it as the last expression of a cell; press "evaluate")."""
    return UtilityUI()
