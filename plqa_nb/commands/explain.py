"""``plqa explain``: PLQ maps for files and folders → results.csv, one .npz and .png per face."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..batch import ResultTable, atomic_save_npz, atomic_save_png, common_root, output_stem, run_batch
from ..images import iter_image_files
from . import VERBS
from .common import add_batch_options, add_model_options, make_explainer, print_summary, writes_out

COLUMNS = ["file", "status", "error", "output", "quality", "quality_raw", "backbone", "quality_method",
           "attribution", "faces_found", "flagged_region", "feedback", "seconds"]


def register(sub) -> None:
    p = sub.add_parser("explain", help=VERBS["explain"],
                       description="Detect, align, score and explain each face; write DIR/results.csv (with the "
                                   "region that stands out against compliant faces, and the feedback in words) and "
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
    inputs = list(args.inputs) + sample_inputs(args.sample, args.out)
    if not inputs:
        raise SystemExit("plqa explain: give at least one INPUT (file or folder) or --sample")
    from ..experiments.common import deviation_maps, flagged  # the heavy part, once the run is accepted
    from ..experiments.feedback import feedback
    from ..experiments.regions import region_masks, region_means
    from ..figures import side_by_side_png
    from ..stages import as_face_crop

    explainer = make_explainer(args, method=args.method)  # a configuration it refuses leaves the table as it was
    root = common_root(iter_image_files(inputs))
    table = ResultTable(args.out / "results.csv", COLUMNS, overwrite=args.overwrite)

    def compute(items):
        results = explainer.explain_prepared([p for _, p in items], keep_photo=False)
        faces = [as_face_crop(p) for _, p in items]
        deviations = deviation_maps(explainer, [f.crop for f in faces])
        rows = []
        for i, ((file, _), r) in enumerate(zip(items, results)):
            rel = Path("maps") / output_stem(file, root)
            npz, png = args.out / f"{rel}.npz", args.out / f"{rel}.png"
            masks = region_masks(faces[i].landmarks, r.crop.shape[0])
            flag = flagged(explainer, None if deviations is None else deviations[i], masks)
            extra = {} if deviations is None else {"deviation": deviations[i].astype("float32")}
            atomic_save_npz(npz, crop=r.crop, plq=r.plq, saliency=r.saliency, embedding=r.embedding,
                            quality=r.quality, quality_raw=r.quality_raw, matrix=r.matrix, **extra)
            atomic_save_png(png, side_by_side_png(r.crop, r.plq, r.quality))
            rows.append({"file": str(file), "status": "ok", "error": "", "output": f"{rel}.npz",
                         "quality": f"{r.quality:.6f}", "quality_raw": f"{r.quality_raw:.6f}",
                         "backbone": r.backbone, "quality_method": r.quality_method, "attribution": r.attribution,
                         "faces_found": r.faces_found, "flagged_region": flag[0] if flag else "",
                         "feedback": feedback(region_means(r.plq, masks), r.quality, flagged=flag)})
        return rows

    summary = run_batch(inputs, table, explainer.prepare, compute, batch_size=args.batch_size, debug=args.debug,
                        desc="plqa explain")
    print_summary(summary, "explain")
    return 0
