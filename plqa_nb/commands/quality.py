"""``plqa quality``: face image quality scores only (no maps), the fast path for large folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..batch import ResultTable, run_batch
from . import VERBS
from .common import add_batch_options, add_model_options, make_explainer, print_summary, writes_out

COLUMNS = ["file", "status", "error", "quality", "quality_raw", "backbone", "quality_method", "faces_found",
           "seconds"]


def register(sub) -> None:
    p = sub.add_parser("quality", help=VERBS["quality"])
    add_batch_options(p)
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True, help="output CSV file")
    p.set_defaults(func=run)


@writes_out(single_file=True)
def run(args: argparse.Namespace) -> int:
    if not args.inputs:
        raise SystemExit("plqa quality: give at least one INPUT (file or folder)")
    from ..pipeline import crops_to_tensor  # the heavy part, once the run is accepted

    explainer = make_explainer(args)  # a configuration it refuses leaves the table as it was
    table = ResultTable(args.out, COLUMNS, overwrite=args.overwrite, output_columns=())

    def compute(items):
        q_hat, raw = explainer.quality(crops_to_tensor([p.aligned.crop for _, p in items], explainer.device))
        return [{"file": str(f), "status": "ok", "error": "", "quality": f"{float(q):.6f}",
                 "quality_raw": f"{float(r):.6f}", "backbone": explainer.backbone.name,
                 "quality_method": explainer.estimator.name, "faces_found": p.detection.faces_found}
                for (f, p), q, r in zip(items, q_hat.cpu(), raw.cpu())]

    summary = run_batch(args.inputs, table, explainer.prepare, compute, batch_size=args.batch_size,
                        debug=args.debug, desc="plqa quality")
    print_summary(summary, "quality")
    return 0
