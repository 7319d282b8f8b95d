"""``plqa compare``: attribution methods side by side, with faithfulness measured.

For every face and method: the raw attribution, its Eq. 5 map and view, deletion and
insertion curves of Q̂ with AUCs, the random-order baseline, infidelity (and optionally
sensitivity_max and, with --road, ROAD's MoRF and LeRF AUCs). Writes, under DIR:

* faithfulness.csv: one row per file × method (resume per file: a face is redone only for
  the methods it lacks). AUCs are mean Q̂ along the curve; random_* the median over the
  random orders; beats_random_* 1 when the map beats it; attribution_seconds and
  method_seconds (attribution + its two curves + metrics) are that method's cost per face,
  seconds the face's whole wall time (all methods, detection included);
* maps/<input path>/<method>.npz: attribution [3,S,S], saliency, view [S,S], curves;
* faces/<input path>.png: the methods' maps side by side;
* spearman.csv (file, method_a, method_b, spearman), summary.csv, summary.md, summary.png
  (mean curves per method and the AUC table), rebuilt from every ok row at the end.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..attribution import REFERENCES, available_methods, get_method
from ..batch import (ResultTable, atomic_save_csv, atomic_save_figure, atomic_save_npz, atomic_write_bytes,
                     common_root, output_stem, run_batch)
from ..images import iter_image_files
from . import VERBS
from .common import (add_batch_options, add_model_options, check_settings, make_explainer, print_summary,
                     writes_out)

COLUMNS = ["file", "method", "status", "error", "output", "figure", "view", "quality", "deletion_auc",
           "insertion_auc", "random_deletion_auc", "random_insertion_auc", "beats_random_deletion",
           "beats_random_insertion", "road_morf_auc", "road_lerf_auc", "random_road_morf_auc", "random_road_lerf_auc",
           "infidelity", "sensitivity_max", "attribution_seconds", "method_seconds", "seconds"]
SUMMARY_COLUMNS = ["method", "view", "faces", "deletion_auc", "random_deletion_auc", "beats_random_deletion",
                   "insertion_auc", "random_insertion_auc", "beats_random_insertion", "road_morf_auc",
                   "road_lerf_auc", "random_road_morf_auc", "random_road_lerf_auc", "infidelity", "sensitivity_max",
                   "spearman_vs_saliency", "attribution_seconds", "seconds_per_face"]


def register(sub) -> None:
    p = sub.add_parser("compare", help=VERBS["compare"],
                       description="Attribute each face with several methods, measure deletion and insertion "
                                   "curves of Q̂ against a random-order baseline; write DIR/faithfulness.csv, "
                                   "per-face and summary figures.")
    add_batch_options(p)
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--methods", nargs="+", choices=available_methods(), default=available_methods(),
                   metavar="M", help=f"methods to compare (default all: {', '.join(available_methods())})")
    p.add_argument("--steps", type=int, default=50,
                   help="curve points after the first (default 50: with --step 0.02 the whole crop; "
                        "fewer cover the most useful part only, at the same resolution)")
    p.add_argument("--step", type=float, default=0.02, help="fraction of the crop changed per step (default 0.02)")
    p.add_argument("--filler", choices=REFERENCES, default="black", help="what deleted pixels become (default black)")
    p.add_argument("--random", type=int, default=5,
                   help="random pixel orders per face; the baseline is their median AUC (default 5)")
    p.add_argument("--infidelity", type=int, default=10,
                   help="perturbation samples of Captum's infidelity on M_Q (default 10; 0: off)")
    p.add_argument("--sensitivity", type=int, default=0,
                   help="perturbation samples of Captum's sensitivity_max (costs that many extra "
                        "attributions per face; default 0: off)")
    p.add_argument("--road", action="store_true",
                   help="also ROAD (remove and debias: deleted pixels imputed from their neighbours, most and least "
                        "relevant first), without the black-fill bias of deletion; ~1.5 s per face and method")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> dict:
    return {"backbone": args.backbone, "detector": args.detector, "quality": args.quality,
            "calibration": str(args.calibration or ""),
            "steps": args.steps, "step": args.step, "filler": args.filler, "random": args.random,
            "infidelity": args.infidelity, "sensitivity": args.sensitivity, "road": args.road, "seed": args.seed}


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):.6f}"


@writes_out()
def run(args: argparse.Namespace) -> int:
    if not args.inputs:
        raise SystemExit("plqa compare: give at least one INPUT (file or folder)")
    if args.random < 1:
        raise ValueError("--random must be at least 1")
    from ..evaluation import compare_methods, curve_fractions  # the heavy part, once the run is accepted
    from ..evaluation.plots import face_figure
    from ..pipeline import crops_to_tensor

    curve_fractions(args.steps, args.step)  # ValueError on a bad pair
    methods = list(dict.fromkeys(args.methods))
    check_settings(args.out, _settings(args), args.overwrite)
    explainer = make_explainer(args)
    root = common_root(iter_image_files(args.inputs))

    def key(row: dict) -> str:
        return f"{row['file']}\t{row['method']}"

    table = ResultTable(args.out / "faithfulness.csv", COLUMNS, overwrite=args.overwrite,
                        output_columns=("output", "figure"), key=key, multi_row=True)
    # a face is done only when it has every requested method
    table.done_files = {f for f in table.done_files if all(f"{f}\t{m}" in table.done for m in methods)}

    views_kind = {m: get_method(m).view for m in methods}

    def face_rows(file: Path, crop: np.ndarray, i: int, comp) -> list[dict]:
        """Save the face's arrays and figure; its rows for the methods computed now."""
        rel = output_stem(file, root)
        figure = Path("faces") / f"{rel}.png"
        rows, views, scores = [], {}, {}
        for m in methods:
            npz = Path("maps") / rel / f"{m}.npz"
            r = comp.methods.get(m)
            if r is None:  # done in an earlier run
                z = np.load(args.out / npz)
                views[m], scores[m] = z["view"], (float(z["deletion_auc"]), float(z["insertion_auc"]))
                continue
            rd, ri = float(comp.random_deletion_auc[i]), float(comp.random_insertion_auc[i])
            d, ins = float(r.deletion_auc[i]), float(r.insertion_auc[i])
            beats_d, beats_i = (bool(b[i]) for b in comp.beats_random(m))
            views[m], scores[m] = r.view[i].cpu().numpy(), (d, ins)
            atomic_save_npz(args.out / npz, attribution=r.attribution[i].cpu().numpy().astype(np.float32),
                            saliency=r.saliency[i].cpu().numpy().astype(np.float32),
                            view=views[m].astype(np.float32), fractions=comp.fractions.cpu().numpy(),
                            deletion=r.deletion[i].cpu().numpy(), insertion=r.insertion[i].cpu().numpy(),
                            random_deletion=comp.random_deletion[i].cpu().numpy(),
                            random_insertion=comp.random_insertion[i].cpu().numpy(),
                            quality=float(comp.quality[i]), deletion_auc=d, insertion_auc=ins)
            rows.append({"file": str(file), "method": m, "status": "ok", "error": "", "output": str(npz),
                         "figure": str(figure), "view": views_kind[m], "quality": _fmt(comp.quality[i]),
                         "deletion_auc": _fmt(d), "insertion_auc": _fmt(ins), "random_deletion_auc": _fmt(rd),
                         "random_insertion_auc": _fmt(ri), "beats_random_deletion": int(beats_d),
                         "beats_random_insertion": int(beats_i),
                         "road_morf_auc": _fmt(None if r.road_morf_auc is None else r.road_morf_auc[i]),
                         "road_lerf_auc": _fmt(None if r.road_lerf_auc is None else r.road_lerf_auc[i]),
                         "random_road_morf_auc": _fmt(None if comp.random_road_morf_auc is None
                                                      else comp.random_road_morf_auc[i]),
                         "random_road_lerf_auc": _fmt(None if comp.random_road_lerf_auc is None
                                                      else comp.random_road_lerf_auc[i]),
                         "infidelity": _fmt(None if r.infidelity is None else r.infidelity[i]),
                         "sensitivity_max": _fmt(None if r.sensitivity is None else r.sensitivity[i]),
                         "attribution_seconds": f"{r.attribution_seconds:.3f}",
                         "method_seconds": f"{r.seconds:.3f}"})
        atomic_save_figure(args.out / figure, face_figure(
            crop, views, scores, title=str(rel),
            random_scores=(float(comp.random_deletion_auc[i]), float(comp.random_insertion_auc[i]))))
        return rows

    def compute(items):
        groups = defaultdict(list)  # faces that lack the same methods go together
        for f, p in items:
            groups[tuple(m for m in methods if f"{f}\t{m}" not in table.done)].append((f, p))
        rows = []
        for todo, group in groups.items():
            crops = crops_to_tensor([p.aligned.crop for _, p in group], explainer.device)
            comp = compare_methods(explainer, crops, todo, names=[str(f) for f, _ in group], steps=args.steps,
                                   step=args.step, filler=args.filler, n_random=args.random, seed=args.seed,
                                   infidelity_samples=args.infidelity, sensitivity_samples=args.sensitivity,
                                   road=args.road)
            for i, (f, p) in enumerate(group):
                rows += face_rows(f, p.aligned.crop, i, comp)
        return rows

    summary = run_batch(args.inputs, table, explainer.prepare, compute, batch_size=args.batch_size,
                        debug=args.debug, desc="plqa compare")
    print_summary(summary, "compare")
    print(write_summary(args.out))
    return 0


def write_summary(out: Path) -> str:
    """Rebuild spearman.csv, summary.csv/.md/.png from every ok row of out/faithfulness.csv;
    returns the markdown table."""
    from ..evaluation import spearman_matrix
    from ..evaluation.plots import summary_figure

    with open(out / "faithfulness.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    order = {m: k for k, m in enumerate(available_methods())}
    by_file: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_file[r["file"]][r["method"]] = r
    spearman_rows, curves = [], defaultdict(list)
    vs_saliency = defaultdict(list)
    for file, recs in by_file.items():
        names = sorted(recs, key=lambda m: order.get(m, len(order)))
        arrays = {m: np.load(out / recs[m]["output"]) for m in names}
        for m in names:
            curves[m].append((arrays[m]["deletion"], arrays[m]["insertion"]))
        curves["random"].append((arrays[names[0]]["random_deletion"], arrays[names[0]]["random_insertion"]))
        rho = spearman_matrix(np.stack([arrays[m]["saliency"] for m in names]))
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                spearman_rows.append({"file": file, "method_a": names[a], "method_b": names[b],
                                      "spearman": f"{rho[a, b]:.6f}"})
            if "saliency" in names:
                vs_saliency[names[a]].append(rho[a, names.index("saliency")])
        fractions = arrays[names[0]]["fractions"]
    atomic_save_csv(out / "spearman.csv", spearman_rows, ["file", "method_a", "method_b", "spearman"])

    def mean(values) -> str:
        vals = [float(v) for v in values if v not in ("", None)]
        return f"{np.nanmean(vals):.4f}" if vals else ""

    table = []
    for m in sorted({r["method"] for r in rows}, key=lambda m: order.get(m, len(order))):
        rs = [r for r in rows if r["method"] == m]
        table.append({"method": m, "view": rs[0]["view"], "faces": len(rs),
                      **{c: mean(r[c] for r in rs) for c in ("deletion_auc", "random_deletion_auc",
                                                            "beats_random_deletion", "insertion_auc",
                                                            "random_insertion_auc", "beats_random_insertion",
                                                            "road_morf_auc", "road_lerf_auc", "random_road_morf_auc",
                                                            "random_road_lerf_auc", "infidelity", "sensitivity_max")},
                      "spearman_vs_saliency": mean(vs_saliency.get(m, [])),
                      "attribution_seconds": mean(r["attribution_seconds"] for r in rs),
                      "seconds_per_face": mean(r["method_seconds"] for r in rs)})
    atomic_save_csv(out / "summary.csv", table, SUMMARY_COLUMNS)
    md = "| " + " | ".join(SUMMARY_COLUMNS) + " |\n|" + "---|" * len(SUMMARY_COLUMNS) + "\n"
    md += "".join("| " + " | ".join(str(r[c]) for c in SUMMARY_COLUMNS) + " |\n" for r in table)
    atomic_write_bytes(out / "summary.md", md.encode())
    if table:
        mean_del = {m: np.mean([c[0] for c in cs], 0) for m, cs in curves.items()}
        mean_ins = {m: np.mean([c[1] for c in cs], 0) for m, cs in curves.items()}
        atomic_save_figure(out / "summary.png", summary_figure(
            fractions, mean_del, mean_ins, table,
            ["method", "faces", "deletion_auc", "random_deletion_auc", "beats_random_deletion", "insertion_auc",
             "random_insertion_auc", "beats_random_insertion", "seconds_per_face"]))
    return md
