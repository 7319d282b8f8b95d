"""``plqa quality``: face image quality scores only (no maps), the fast path for large folders."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from . import VERBS
from .common import (add_batch_options, add_model_options, add_scale_options, computes_concurrently, make_explainer,
                     model_options, open_table, print_summary, scale_options, writes_out)

COLUMNS = ["file", "status", "error", "quality", "quality_raw", "backbone", "quality_method", "faces_found",
           "seconds"]


def register(sub) -> None:
    p = sub.add_parser("quality", help=VERBS["quality"])
    add_batch_options(p)
    add_model_options(p)
    add_scale_options(p)
    p.add_argument("--out", type=Path, required=True, help="output CSV file")
    p.set_defaults(func=run)


class QualityStep:
    """The model of a run, built once per process (``plqa_nb.scale``): ``prepare`` and ``compute`` for
    ``batch.process_files``."""

    def __init__(self, model: argparse.Namespace):
        self.explainer = make_explainer(model)
        self.prepare = self.explainer.prepare
        self.concurrent = computes_concurrently(self.explainer)  # ``scale.Step``

    def compute(self, items: list) -> list[dict]:
        from ..pipeline import crops_to_tensor

        explainer = self.explainer
        q_hat, raw = explainer.quality(crops_to_tensor([p.aligned.crop for _, p in items], explainer.device))
        return [{"file": str(f), "status": "ok", "error": "", "quality": f"{float(q):.6f}",
                 "quality_raw": f"{float(r):.6f}", "backbone": explainer.backbone.name,
                 "quality_method": explainer.estimator.name, "faces_found": p.detection.faces_found}
                for (f, p), q, r in zip(items, q_hat.cpu(), raw.cpu())]


@writes_out(single_file=True)
def run(args: argparse.Namespace) -> int:
    from ..scale import run_files

    if not args.inputs:
        raise SystemExit("plqa quality: give at least one INPUT (file or folder)")
    table = open_table(args, args.out, COLUMNS, output_columns=())
    make_step = functools.partial(QualityStep, model_options(args))
    summary = run_files(args.inputs, table, make_step, desc="plqa quality", **scale_options(args))
    print_summary(summary, "quality")
    return 0
