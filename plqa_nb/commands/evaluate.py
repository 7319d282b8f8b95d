"""``plqa evaluate erc``: how well quality estimators predict verification errors (error versus discard).

Per image (batched, resumable, like the other verbs): detection and alignment, one embedding
and each estimator's raw Q and Q̂ (Eq. 2 with the backbone's default α, r), sharing the trunk's
features → DIR/images.csv and DIR/embeddings/<path in DATASET>.npz. Then, over the pairs (see
``plqa_nb.evaluation.pairs``): cosine scores, pair quality = the lower raw Q (ranking) and the
lower Q̂ (calibration), and per estimator plus ``random`` and ``oracle`` → DIR/erc.csv,
DIR/summary.csv and DIR/erc.png, labelled with the threshold convention
(``plqa_nb.evaluation.erc``). Images that fail (no face, unreadable) are error rows of
images.csv and are listed on stdout; pairs involving them are dropped and counted.
"""
from __future__ import annotations

import argparse
import csv
import functools
import math
import warnings
from pathlib import Path

import numpy as np

from ..backbones import DEFAULT_BACKBONE, available_backbones
from ..batch import ResultTable, atomic_save_csv, atomic_save_figure, atomic_save_npz
from ..evaluation.erc import CONVENTIONS, ERC_COLUMNS, SUMMARY_COLUMNS
from ..quality import available_estimators
from . import VERBS
from .common import (add_detector_option, add_scale_options, check_settings, computes_concurrently, print_summary,
                     scale_options, writes_out)

RUN_COLUMNS = ["backbone", "impostor_selection", "images", "failed_images", "dropped_pairs"]
SHOWN_FAILURES = 20  # failed files listed on stdout (all of them are in images.csv)


def register(sub) -> None:
    p = sub.add_parser("evaluate", help=VERBS["evaluate"],
                       description="Benchmarks of the quality estimators; see each sub-command.")
    ev = p.add_subparsers(dest="evaluation", required=True)
    e = ev.add_parser("erc", help="error versus discard (ERC/EDC): FNMR as low-quality pairs are discarded",
                      description="Score every image of DATASET, compare the pairs, and write DIR/erc.csv, "
                                  "DIR/summary.csv and DIR/erc.png (one curve per estimator, random and oracle).")
    e.add_argument("dataset", type=Path, metavar="DATASET",
                   help="folder with one subfolder per identity (pairs inside a subfolder are genuine, across "
                        "subfolders impostor), or the folder the paths of --pairs are relative to")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--pairs", type=Path, default=None, metavar="PAIRS.csv",
                   help="CSV with columns a,b,same (paths relative to DATASET; same 1 genuine, 0 impostor): "
                        "only these pairs count")
    e.add_argument("--quality", nargs="+", choices=available_estimators(), default=None, metavar="EST",
                   help=f"estimators, one curve each ({', '.join(available_estimators())}; "
                        "default: the backbone's own)")
    e.add_argument("--fmr", type=float, default=1e-3, help="false match rate that sets the threshold (default 1e-3)")
    e.add_argument("--threshold", choices=list(CONVENTIONS), default="fixed",
                   help="fixed: set once from all impostor scores (ISO/IEC 29794-1 EDC, default); recompute: "
                        "set again on the pairs left at each discard level (CR-FIQA/MagFace)")
    e.add_argument("--max-impostors", type=int, default=200_000,
                   help="folder layout: at most this many impostor pairs, a seeded uniform sample when there are "
                        "more (default 200000; 0: all)")
    e.add_argument("--backbone", default=DEFAULT_BACKBONE,  # checked when resolved: a registry may grow
                   help=f"face-recognition network: {', '.join(available_backbones())} or onnx:PATH[?options] "
                        f"(default {DEFAULT_BACKBONE})")
    add_detector_option(e)
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the estimators, the impostor sample and the random rejection")
    e.add_argument("--batch-size", type=int, default=8, help="faces per network pass")
    e.add_argument("--overwrite", action="store_true", help="redo images already done and replace their outputs")
    e.add_argument("--debug", action="store_true", help="print tracebacks")
    add_scale_options(e)
    e.set_defaults(func=run_erc)


def _f(x) -> str:
    return f"{float(x):.9g}"  # round-trips float32


class ErcStep:
    """The backbone and estimators of a run, built once per process (``plqa_nb.scale``): ``prepare`` and
    ``compute`` for ``batch.process_files``; each face's embedding and qualities go to
    OUT/embeddings/<path in DATASET>.npz. ``identity``: path in DATASET (posix) → identity."""

    def __init__(self, backbone: str, device: str, seed: int, detector: str, names: list[str], out: Path,
                 dataset: Path, identity: dict[str, str]):
        from ..config import resolve_config
        from ..pipeline import Explainer

        self.explainer = Explainer(backbone=backbone, device=device, seed=seed, detector=detector)
        self.configs = {n: resolve_config(self.explainer.backbone, n, seed=seed) for n in names}
        self.seed, self.out, self.dataset, self.identity = seed, out, dataset, identity
        self.prepare = self.explainer.prepare
        self.concurrent = computes_concurrently(self.explainer)  # ``scale.Step``

    def compute(self, items: list) -> list[dict]:
        from ..backbones.base import crops_to_tensor
        from ..evaluation.pairs import face_scores

        x = crops_to_tensor([p.aligned.crop for _, p in items], self.explainer.device)
        emb, raw, q_hat = face_scores(self.explainer.backbone, self.configs, x, self.seed)
        values = {**{f"raw_{n}": v for n, v in raw.items()}, **{f"q_{n}": v for n, v in q_hat.items()}}
        rows = []
        for i, (file, p) in enumerate(items):
            r = Path(file).relative_to(self.dataset).as_posix()
            out = Path("embeddings") / f"{r}.npz"
            atomic_save_npz(self.out / out, embedding=emb[i].astype(np.float32),
                            **{k: np.float32(v[i]) for k, v in values.items()})
            rows.append({"file": str(file), "identity": self.identity[r], "status": "ok", "error": "",
                         "output": str(out), "faces_found": p.detection.faces_found,
                         **{k: _f(v[i]) for k, v in values.items()}})
        return rows


@writes_out()
def run_erc(args: argparse.Namespace) -> int:
    from ..config import resolve_config
    from ..evaluation import erc
    from ..evaluation.pairs import evaluate_images, folder_pairs, listed_pairs
    from ..evaluation.plots import erc_figure
    from ..scale import run_files

    if not 0 < args.fmr < 1:
        raise ValueError(f"--fmr must lie in (0, 1), not {args.fmr}")
    if args.max_impostors < 0:
        raise ValueError("--max-impostors must be ≥ 0")
    pairs = (listed_pairs(args.dataset, args.pairs) if args.pairs is not None
             else folder_pairs(args.dataset, args.max_impostors or None, args.seed))
    check_settings(args.out, {"backbone": args.backbone, "seed": args.seed, "detector": args.detector},
                   args.overwrite)
    names = list(dict.fromkeys(args.quality or [resolve_config(args.backbone, seed=args.seed).quality]))
    columns = (["file", "identity", "status", "error", "output", "faces_found"] + [f"q_{n}" for n in sorted(names)]
               + [f"raw_{n}" for n in sorted(names)] + ["seconds"])
    table = ResultTable(args.out / "images.csv", columns, overwrite=args.overwrite)
    make_step = functools.partial(ErcStep, args.backbone, args.device, args.seed, args.detector, names, args.out,
                                  pairs.dataset,
                                  dict(zip(pairs.rel, pairs.identities)))
    summary = run_files(pairs.files, table, make_step, desc="plqa evaluate erc", outputs=args.out,
                        **scale_options(args))
    print_summary(summary, "evaluate erc")

    with open(table.path, newline="", encoding="utf-8") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    n = len(pairs.rel)
    ok = np.zeros(n, bool)
    emb, raw, q_hat, failed = None, {m: np.full(n, np.nan) for m in names}, {m: np.full(n, np.nan) for m in names}, []
    for i, file in enumerate(pairs.files):
        row = rows.get(str(file))
        if row is None or row["status"] != "ok":
            failed.append((str(file), row["error"] if row else "not processed"))
            continue
        with np.load(args.out / row["output"]) as z:
            if emb is None:
                emb = np.full((n, z["embedding"].size), np.nan, np.float32)
            emb[i] = z["embedding"]
            for m in names:
                raw[m][i], q_hat[m][i] = z[f"raw_{m}"], z[f"q_{m}"]
        ok[i] = True
    valid = ok[pairs.a] & ok[pairs.b]
    if emb is None or not valid.any():
        raise ValueError(f"{args.dataset}: no pair left to compare ({len(failed)} of {n} images failed)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = evaluate_images(emb, raw, q_hat, pairs.a[valid], pairs.b[valid], pairs.genuine[valid], args.fmr,
                                  args.threshold, args.seed)

    run_info = {"backbone": resolve_config(args.backbone).backbone, "impostor_selection": pairs.selection,
                "images": n, "failed_images": len(failed), "dropped_pairs": int((~valid).sum())}
    atomic_save_csv(args.out / "erc.csv", erc.erc_rows(results), ERC_COLUMNS)
    atomic_save_csv(args.out / "summary.csv", [{**r, **run_info} for r in erc.summary_rows(results)],
                    SUMMARY_COLUMNS + RUN_COLUMNS)
    atomic_save_figure(args.out / "erc.png", erc_figure(results))
    _report(args, results, run_info, failed, {str(w.message) for w in caught})
    return 0


def _report(args: argparse.Namespace, results, run_info: dict, failed: list[tuple[str, str]],
            notes: set[str]) -> None:
    """The run on stdout: failures, pair counts, convention, and the summary table."""
    if failed:
        print(f"{len(failed)} of {run_info['images']} images failed; the {run_info['dropped_pairs']} pairs "
              "involving them are dropped:")
        for file, error in failed[:SHOWN_FAILURES]:
            print(f"  {error if error.startswith(file) else f'{file}: {error}'}")
        if len(failed) > SHOWN_FAILURES:
            print(f"  … and {len(failed) - SHOWN_FAILURES} more (status 'error' in {args.out / 'images.csv'})")
    r0 = results[0]
    print(f"{r0.genuine} genuine, {r0.impostor} impostor pairs (impostors: {run_info['impostor_selection']})")
    print(f"{CONVENTIONS[r0.convention]}; FMR {r0.fmr:g} → threshold {r0.threshold:.4f} "
          f"(measured FMR {r0.fmr_measured:.4g})")
    if notes:  # the recompute convention warns once per discard level: show one
        more = f" ({len(notes) - 1} similar at other discard levels)" if len(notes) > 1 else ""
        print(f"note: {sorted(notes)[0]}{more}")
    cols = ["fnmr_reject_0", "fnmr_reject_20", "pauc_20", "pauc_30", "ece"]
    print("quality_method\t" + "\t".join(cols))
    for r in results:
        vals = [r.curve.at(0), r.curve.at(0.2), r.pauc[0.2], r.pauc[0.3], r.ece]
        print(r.method + "\t" + "\t".join("nan" if math.isnan(v) else f"{v:.4f}" for v in vals))
    print(f"→ {args.out / 'summary.csv'}, {args.out / 'erc.csv'}, {args.out / 'erc.png'}")
