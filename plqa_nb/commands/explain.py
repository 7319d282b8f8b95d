"""``plqa explain``: PLQ maps for files and folders → results.csv, one .npz and .png per face."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..batch import ResultTable, atomic_save_npz, atomic_save_png, common_root, output_stem, run_batch
from ..images import iter_image_files
from .common import add_batch_options, add_model_options, make_explainer, print_summary, writes_out

COLUMNS = ["file", "status", "error", "output", "quality", "quality_raw", "backbone", "quality_method",
           "attribution", "faces_found", "seconds"]


def register(sub) -> None:
    p = sub.add_parser("explain", help="pixel-level quality maps for photos",
                       description="Detect, align, score and explain each face; write DIR/results.csv and "
                                   "DIR/maps/<input path>.npz/.png.")
    add_batch_options(p)
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--method", default="saliency", help="attribution method (default: the paper's saliency)")
    p.add_argument("--sample", choices=["astronaut"], action="append", default=[],
                   help="add a sample photo that ships with scikit-image")
    p.set_defaults(func=run)


def sample_inputs(names: list[str], out: Path) -> list[Path]:
    """Write the named sample photos under OUT/samples (once) and return their paths."""
    from ..data import astronaut

    paths = []
    for name in names:
        path = out / "samples" / f"{name}.png"
        if not path.exists():
            atomic_save_png(path, astronaut())
        paths.append(path)
    return paths


@writes_out()
def run(args: argparse.Namespace) -> int:
    from ..figures import side_by_side_png

    inputs = list(args.inputs) + sample_inputs(args.sample, args.out)
    if not inputs:
        raise SystemExit("plqa explain: give at least one INPUT (file or folder) or --sample")
    explainer = make_explainer(args, method=args.method)
    root = common_root(iter_image_files(inputs))
    table = ResultTable(args.out / "results.csv", COLUMNS, overwrite=args.overwrite)

    def compute(items):
        results = explainer.explain_prepared([p for _, p in items], keep_photo=False)
        rows = []
        for (file, _), r in zip(items, results):
            rel = Path("maps") / output_stem(file, root)
            npz, png = args.out / f"{rel}.npz", args.out / f"{rel}.png"
            atomic_save_npz(npz, crop=r.crop, plq=r.plq, saliency=r.saliency, embedding=r.embedding,
                            quality=r.quality, quality_raw=r.quality_raw, matrix=r.matrix)
            atomic_save_png(png, side_by_side_png(r.crop, r.plq, r.quality))
            rows.append({"file": str(file), "status": "ok", "error": "", "output": f"{rel}.npz",
                         "quality": f"{r.quality:.6f}", "quality_raw": f"{r.quality_raw:.6f}",
                         "backbone": r.backbone, "quality_method": r.quality_method, "attribution": r.attribution,
                         "faces_found": r.faces_found})
        return rows

    summary = run_batch(inputs, table, explainer.prepare, compute, batch_size=args.batch_size, debug=args.debug,
                        desc="plqa explain")
    print_summary(summary, "explain")
    return 0
