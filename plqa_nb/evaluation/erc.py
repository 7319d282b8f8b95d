"""Error versus discard: does discarding low-quality comparisons remove recognition errors?

Pure numpy (no network), after ISO/IEC 29794-1's error-versus-discard characteristic (EDC)
and Schlett et al., "Considerations on the Evaluation of Biometric Quality Assessment
Algorithms" (arXiv 2303.13294).

* Scores are similarity scores of comparisons (pairs of images), higher = more alike; a
  comparison *matches* when score ≥ threshold. FMR = share of impostor scores that match,
  FNMR = share of genuine scores that do not.
* Quality: higher = better; a pair's quality is the lower of its two images' (``pair_quality``).
* Ties: pairs of equal quality are discarded together. Asked to discard a fraction f of n
  pairs, we discard the ⌈f·n⌉ of lowest quality and every pair tied with the last of them,
  so the *effective* fraction may exceed f; curves return both.
* Conventions (label every figure and table with ``CONVENTIONS[convention]``):

  - ``fixed`` (the default; ISO's EDC): the threshold is set once, at the target FMR over
    all impostor scores; the genuine pairs of lowest quality are discarded and the FNMR is
    measured on the remaining genuine pairs. Discard fraction = share of the genuine pairs.
  - ``recompute`` (CR-FIQA's and MagFace's evaluation code): genuine and impostor pairs are
    discarded together by pair quality and the threshold is set again, at the target FMR,
    from the remaining impostor scores. Discard fraction = share of all pairs.

* pAUC: the area under FNMR(discard fraction) from 0 to ``limit``, stepwise (each point's
  FNMR holds up to the next point's fraction), divided by limit × FNMR at 0: 1 for a quality
  that does not help, lower is better, 0 when the first discards remove every error.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..verification import threshold_at_fmr

CONVENTIONS = {"fixed": "fixed threshold (ISO/IEC 29794-1 EDC)",
               "recompute": "threshold recomputed per discard level (CR-FIQA/MagFace)"}
DISCARD_AXIS = {"fixed": "fraction of genuine pairs discarded (lowest pair quality first)",
                "recompute": "fraction of all pairs discarded (lowest pair quality first)"}
ERC_FRACTIONS = np.round(np.arange(51) * 0.01, 2)  # the discard fractions of erc.csv: 0, 0.01, ..., 0.5
REPORT_AT = (0.0, 0.1, 0.2, 0.3)  # summary.csv: fnmr_reject_0, _10, _20, _30
PAUC_LIMITS = (0.2, 0.3)  # summary.csv: pauc_20, pauc_30
RANDOM, ORACLE = "random", "oracle"
ERC_COLUMNS = ["quality_method", "convention", "reject_fraction", "effective_fraction", "fnmr", "threshold"]
SUMMARY_COLUMNS = (["quality_method", "convention", "genuine", "impostor", "fmr", "fmr_measured", "threshold"]
                   + [f"fnmr_reject_{round(100 * f)}" for f in REPORT_AT]
                   + [f"pauc_{round(100 * lim)}" for lim in PAUC_LIMITS] + ["ece"])


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: non-finite values")
    return a


def _convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention '{convention}'; use one of {', '.join(CONVENTIONS)}")
    return convention


def pair_quality(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    """Quality of pairs [P] from their two images' qualities [P]: the lower one."""
    return np.minimum(np.asarray(q_a, np.float64), np.asarray(q_b, np.float64))


def _discard_counts(sorted_quality: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Pairs discarded [F] for nominal fractions [F] of ascending qualities [N]: ⌈f·N⌉ plus their ties."""
    k = np.ceil(np.round(fractions * len(sorted_quality), 9)).astype(np.int64)
    cut = sorted_quality[np.maximum(k, 1) - 1]
    return np.where(k > 0, np.searchsorted(sorted_quality, cut, side="right"), 0)


@dataclass
class ErcCurve:
    """FNMR after discarding the lowest-quality pairs, one point per discard level.

    fractions: the nominal discard fractions asked for [F]; effective: the fractions really
    discarded (ties go together) [F]; fnmr: [F] (nan once no genuine pair is left);
    threshold: the threshold at each point [F] (constant for the fixed convention).
    """

    fractions: np.ndarray
    effective: np.ndarray
    fnmr: np.ndarray
    threshold: np.ndarray

    def at(self, fraction: float) -> float:
        """FNMR at the nominal discard ``fraction`` (one of ``fractions``)."""
        i = np.flatnonzero(np.isclose(self.fractions, fraction, rtol=0, atol=1e-9))
        if i.size == 0:
            raise KeyError(f"no point at discard fraction {fraction}")
        return float(self.fnmr[i[0]])


def erc_curve(genuine_scores: np.ndarray, genuine_quality: np.ndarray, impostor_scores: np.ndarray, fmr: float,
              fractions: Sequence[float] | np.ndarray | None = None, impostor_quality: np.ndarray | None = None,
              convention: str = "fixed") -> ErcCurve:
    """The error-versus-discard curve of genuine pairs (scores and qualities [N]) at a target FMR.

    impostor_scores [M] set the threshold (``threshold_at_fmr``); the ``recompute`` convention
    also needs impostor_quality [M]. fractions: nominal discard fractions in [0, 1]; None = every
    discard level the qualities allow (0 and the end of each tie group: the exact step curve;
    with ``recompute`` that costs one threshold per level).
    """
    convention = _convention(convention)
    g, gq = _vector(genuine_scores, "genuine scores"), _vector(genuine_quality, "genuine quality")
    imp = _vector(impostor_scores, "impostor scores")
    if g.size == 0 or g.size != gq.size:
        raise ValueError(f"need as many genuine qualities as genuine scores (> 0), not {gq.size} and {g.size}")
    if convention == "fixed":
        sq, pool = np.sort(gq), gq
    else:
        if impostor_quality is None:
            raise ValueError("the recompute convention needs impostor_quality")
        iq = _vector(impostor_quality, "impostor quality")
        if iq.size != imp.size:
            raise ValueError(f"{iq.size} impostor qualities for {imp.size} impostor scores")
        pool = np.concatenate([gq, iq])
        sq = np.sort(pool)
    n = sq.size
    if fractions is None:
        d = np.unique(np.concatenate([[0], np.searchsorted(sq, np.unique(sq), side="right")]))
        d = d[d < n]
        nominal = d / n
    else:
        nominal = np.asarray(fractions, np.float64).ravel()
        if ((nominal < 0) | (nominal > 1)).any():
            raise ValueError("discard fractions must lie in [0, 1]")
        d = _discard_counts(sq, nominal)
    if convention == "fixed":
        t = threshold_at_fmr(imp, fmr)
        errors = (g < t)[np.argsort(gq, kind="stable")]
        before = np.concatenate([[0], np.cumsum(errors)])
        with np.errstate(invalid="ignore", divide="ignore"):
            fnmr = np.where(d < n, (errors.sum() - before[d]) / (n - d), np.nan)
        thresholds = np.full(d.shape, t)
    else:
        fnmr, thresholds = np.full(d.shape, np.nan), np.full(d.shape, np.nan)
        for i, di in enumerate(d):
            cut = sq[di - 1] if di > 0 else -np.inf
            kept_g, kept_i = g[gq > cut], imp[iq > cut]
            if kept_g.size and kept_i.size:
                thresholds[i] = threshold_at_fmr(kept_i, fmr)
                fnmr[i] = np.mean(kept_g < thresholds[i])
    return ErcCurve(fractions=nominal, effective=d / n, fnmr=fnmr, threshold=thresholds)


def pauc(fractions: np.ndarray, fnmr: np.ndarray, limit: float = 0.2) -> float:
    """Normalised stepwise area under an ERC from discard 0 to ``limit``.

    fractions [P]: ascending (effective) discard fractions, the first 0; fnmr [P]: each holds
    up to the next fraction, the last up to ``limit``. Divided by limit × fnmr[0]; nan when
    fnmr[0] = 0 (no error to reduce, so no quality can do better or worse than random).
    """
    f, e = np.asarray(fractions, np.float64).ravel(), np.asarray(fnmr, np.float64).ravel()
    if f.size == 0 or f.size != e.size or f[0] != 0 or (np.diff(f) < 0).any() or not 0 < limit <= 1:
        raise ValueError("need ascending fractions starting at 0, one fnmr per fraction and 0 < limit <= 1")
    if e[0] == 0:
        return float("nan")
    inside = f < limit
    widths = np.diff(np.append(f[inside], limit))
    return float(np.sum(widths * e[inside]) / (limit * e[0]))


def random_rejection_curve(genuine_scores: np.ndarray, impostor_scores: np.ndarray, fmr: float,
                           fractions: Sequence[float] | np.ndarray | None = None, convention: str = "fixed",
                           seed: int = 0, draws: int = 20) -> ErcCurve:
    """The ERC of a quality that knows nothing: the mean over ``draws`` seeded random orders.

    Its FNMR stays at the FNMR of discard 0 in expectation (fixed convention). Qualities are
    drawn uniform, so there are no ties and every draw has the same effective fractions;
    threshold: the mean over the draws. The draws are summed as they come: an exact step curve
    has a point per genuine pair, and holding every draw's would take ``draws`` times that.
    """
    if draws < 1:
        raise ValueError(f"draws must be ≥ 1, not {draws}")
    rng = np.random.default_rng(seed)
    n, m = np.size(genuine_scores), np.size(impostor_scores)
    fnmr = threshold = 0.0
    for _ in range(draws):
        curve = erc_curve(genuine_scores, rng.random(n), impostor_scores, fmr, fractions, rng.random(m), convention)
        fnmr, threshold = fnmr + curve.fnmr, threshold + curve.threshold
    return ErcCurve(fractions=curve.fractions, effective=curve.effective, fnmr=fnmr / draws,
                    threshold=threshold / draws)


def oracle_curve(genuine_scores: np.ndarray, impostor_scores: np.ndarray, fmr: float,
                 fractions: Sequence[float] | np.ndarray | None = None, convention: str = "fixed",
                 seed: int = 0) -> ErcCurve:
    """The ERC of a quality that knows the answer: the lowest genuine scores go first.

    Fixed convention: FNMR reaches 0 once the discarded fraction equals the FNMR at 0. With
    ``recompute`` the genuine pairs get their score's rank (0..1) as quality and the impostor
    pairs a seeded uniform one, so each discard level removes about the same share of both.
    """
    g = _vector(genuine_scores, "genuine scores")
    rank = np.searchsorted(np.sort(g), g, side="left") / g.size  # ties share a rank
    iq = np.random.default_rng(seed).random(np.size(impostor_scores))
    return erc_curve(g, rank, impostor_scores, fmr, fractions, iq, convention)


def expected_calibration_error(pair_quality: np.ndarray, matched: np.ndarray, bins: int = 10) -> float:
    """ECE between predicted quality and observed match rate.

    pair_quality [N] in [0, 1] (e.g. the lower Q̂ of each genuine pair); matched bool [N] (score
    ≥ threshold). Equal-width bins on [0, 1] (the last one closed); Σ_b (n_b/N)·|mean q_b − mean
    matched_b|. nan for no pairs.
    """
    count, q_sum, hit_sum = _calibration_bins(pair_quality, matched, bins)
    if count.sum() == 0:
        return float("nan")
    return float(np.abs(q_sum - hit_sum).sum() / count.sum())  # Σ n_b · |mean q_b − mean matched_b| / N


def reliability(pair_quality: np.ndarray, matched: np.ndarray, bins: int = 10) -> list[dict]:
    """The bins of ``expected_calibration_error`` that hold pairs: lower edge, pairs, share of all pairs,
    mean_quality and match_rate (a reliability diagram plots the last two)."""
    count, q_sum, hit_sum = _calibration_bins(pair_quality, matched, bins)
    return [{"lower": k / bins, "pairs": int(n), "share": float(n / count.sum()), "mean_quality": float(q_sum[k] / n),
             "match_rate": float(hit_sum[k] / n)} for k, n in enumerate(count) if n]


def _calibration_bins(pair_quality: np.ndarray, matched: np.ndarray, bins: int):
    """Per equal-width bin of [0, 1] (the last one closed): pair count, sum of qualities, sum of matches."""
    q = _vector(pair_quality, "pair quality")
    hit = np.asarray(matched, dtype=np.float64).ravel()
    if q.size != hit.size:
        raise ValueError(f"{q.size} qualities for {hit.size} match outcomes")
    if ((q < 0) | (q > 1)).any():
        raise ValueError("pair quality must lie in [0, 1] (use the calibrated Q̂)")
    b = np.minimum((q * bins).astype(np.int64), bins - 1)
    return np.bincount(b, minlength=bins), np.bincount(b, q, bins), np.bincount(b, hit, bins)


@dataclass
class ErcResult:
    """One quality method's ERC and its summary numbers.

    method: estimator name, "random" or "oracle"; threshold, fmr_measured: at discard 0;
    genuine, impostor: pair counts; curve: at ``ERC_FRACTIONS``; pauc: limit → pAUC;
    ece: calibration error of Q̂ (nan for random and oracle).
    """

    method: str
    convention: str
    fmr: float
    threshold: float
    fmr_measured: float
    genuine: int
    impostor: int
    curve: ErcCurve
    pauc: dict[float, float] = field(default_factory=dict)
    ece: float = float("nan")

    @property
    def label(self) -> str:
        p = self.pauc.get(0.2, float("nan"))
        return f"{self.method} (pAUC₂₀ {p:.3f})" if np.isfinite(p) else f"{self.method} (pAUC₂₀ undefined)"


def evaluate_erc(scores: np.ndarray, genuine: np.ndarray, qualities: Mapping[str, np.ndarray], fmr: float = 1e-3,
                 convention: str = "fixed", calibrated: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                 fractions: np.ndarray = ERC_FRACTIONS) -> list[ErcResult]:
    """ERCs of each quality method, then ``random`` and ``oracle``.

    scores [P]: similarity of each pair; genuine bool [P]; qualities: method → pair quality [P]
    used to rank (e.g. the min of the raw estimator outputs); calibrated: method → pair Q̂ [P] in
    [0, 1] for the ECE (genuine pairs, match = score ≥ the FMR threshold). The pAUC uses the
    exact step curve with the fixed convention and the ``fractions`` grid with ``recompute``.
    """
    convention = _convention(convention)
    s = _vector(scores, "scores")
    gen = np.asarray(genuine, bool).ravel()
    if gen.size != s.size:
        raise ValueError(f"{gen.size} genuine flags for {s.size} scores")
    g, imp = s[gen], s[~gen]
    if g.size == 0:
        raise ValueError("no genuine pairs")
    t = threshold_at_fmr(imp, fmr)
    curves: dict[str, tuple[ErcCurve, ErcCurve | None]] = {}
    for name, q in qualities.items():
        q = _vector(q, f"quality of {name}")
        args = (g, q[gen], imp, fmr)
        curves[name] = (erc_curve(*args, fractions, q[~gen], convention),
                        erc_curve(*args, None, q[~gen], convention) if convention == "fixed" else None)
    for name, fn in ((RANDOM, random_rejection_curve), (ORACLE, oracle_curve)):
        curves[name] = (fn(g, imp, fmr, fractions, convention, seed),
                        fn(g, imp, fmr, None, convention, seed) if convention == "fixed" else None)
    results = []
    for name, (grid, steps) in curves.items():
        exact = grid if steps is None else steps
        ece = float("nan")
        if calibrated is not None and name in calibrated:
            ece = expected_calibration_error(np.asarray(calibrated[name], np.float64)[gen], g >= t)
        results.append(ErcResult(method=name, convention=convention, fmr=fmr, threshold=t,
                                 fmr_measured=float(np.mean(imp >= t)), genuine=int(g.size), impostor=int(imp.size),
                                 curve=grid, ece=ece,
                                 pauc={lim: pauc(exact.effective, exact.fnmr, lim) for lim in PAUC_LIMITS}))
    return results


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.6g}"


def erc_rows(results: Sequence[ErcResult]) -> list[dict]:
    """The rows of erc.csv (``ERC_COLUMNS``): one per method and discard fraction."""
    return [{"quality_method": r.method, "convention": r.convention, "reject_fraction": f"{f:.2f}",
             "effective_fraction": _fmt(e), "fnmr": _fmt(v), "threshold": _fmt(t)}
            for r in results for f, e, v, t in zip(r.curve.fractions, r.curve.effective, r.curve.fnmr,
                                                  r.curve.threshold)]


def summary_rows(results: Sequence[ErcResult]) -> list[dict]:
    """The rows of summary.csv (``SUMMARY_COLUMNS``): one per method."""
    rows = []
    for r in results:
        row = {"quality_method": r.method, "convention": r.convention, "genuine": r.genuine, "impostor": r.impostor,
               "fmr": f"{r.fmr:g}", "fmr_measured": _fmt(r.fmr_measured), "threshold": _fmt(r.threshold),
               "ece": _fmt(r.ece)}
        row.update({f"fnmr_reject_{round(100 * f)}": _fmt(r.curve.at(f)) for f in REPORT_AT})
        row.update({f"pauc_{round(100 * lim)}": _fmt(r.pauc[lim]) for lim in PAUC_LIMITS})
        rows.append(row)
    return rows


def read_results(folder: str | Path) -> list[ErcResult]:
    """The results written by ``plqa evaluate erc`` into ``folder`` (erc.csv and summary.csv), for plotting."""
    folder = Path(folder)
    with open(folder / "summary.csv", newline="", encoding="utf-8") as f:
        summary = list(csv.DictReader(f))
    with open(folder / "erc.csv", newline="", encoding="utf-8") as f:
        points = list(csv.DictReader(f))
    results = []
    for s in summary:
        mine = [p for p in points if p["quality_method"] == s["quality_method"]]
        col = {c: np.array([float(p[c]) for p in mine])
               for c in ("reject_fraction", "effective_fraction", "fnmr", "threshold")}
        results.append(ErcResult(
            method=s["quality_method"], convention=s["convention"], fmr=float(s["fmr"]),
            threshold=float(s["threshold"]), fmr_measured=float(s["fmr_measured"]), genuine=int(s["genuine"]),
            impostor=int(s["impostor"]), ece=float(s["ece"]),
            curve=ErcCurve(col["reject_fraction"], col["effective_fraction"], col["fnmr"], col["threshold"]),
            pauc={lim: float(s[f"pauc_{round(100 * lim)}"]) for lim in PAUC_LIMITS}))
    return results


NOTHING_TO_DISCARD = (  # two lines of a figure title
    "no false non-match at this threshold: nothing for quality to remove (flat curves, pAUC undefined);",
    "more people or probes, or stronger degradations, give an ERC")


def title(results: Sequence[ErcResult], newline: str = "\n") -> str:
    """A figure title naming the convention, the FMR and the pair counts, and saying so when there is no error to
    remove (FNMR 0 with nothing discarded)."""
    r = results[0]
    text = (f"Error versus discard — {CONVENTIONS[r.convention]}; FMR {r.fmr:g} (threshold {r.threshold:.4f}); "
            f"{r.genuine} genuine, {r.impostor} impostor pairs")
    return newline.join((text, *NOTHING_TO_DISCARD)) if r.curve.at(0) == 0 else text


def curve_style(method: str) -> tuple[str | None, str]:
    """(colour, dash) of a method's curve: random black dashed, oracle grey dotted, estimators solid."""
    return {RANDOM: ("black", "dash"), ORACLE: ("grey", "dot")}.get(method, (None, "solid"))


def erc_plotly(results: Sequence[ErcResult]):
    """The ERCs as a plotly Figure (FNMR over the effective discard fraction, stepwise)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in results:
        colour, dash = curve_style(r.method)
        fig.add_trace(go.Scatter(x=r.curve.effective, y=r.curve.fnmr, name=r.label, mode="lines",
                                 line={"shape": "hv", "dash": dash, "color": colour}))
    fig.update_layout(title={"text": title(results, "<br>"), "font": {"size": 12}},
                      xaxis_title=DISCARD_AXIS[results[0].convention], yaxis_title="FNMR", yaxis_rangemode="tozero",
                      template="plotly_white", legend={"font": {"size": 10}})
    return fig
