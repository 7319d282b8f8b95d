"""``plqa explain``: PLQ maps for files and folders → results.csv, one .npz and .png per face."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..batch import (atomic_save_npz, atomic_save_png, atomic_write_bytes, common_root, output_stem, timed,
                     write_output)
from ..images import iter_image_files
from . import VERBS
from .common import (add_batch_options, add_model_options, add_scale_options, computes_concurrently, make_explainer,
                     model_options, open_table, print_summary, scale_options, writes_out)

if TYPE_CHECKING:
    from ..stages import PreparedFace

STAGES = {"prepare": "decode, detect and align a photo",
          "network": "the network pass, the maps of Eq. 2-6 and the deviation map from its feature maps",
          "maps": "regions, flag and feedback", "output": "writing the .npz and .png"}
COLUMNS = ["file", "status", "error", "output", "quality", "quality_raw", "backbone", "quality_method",
           "attribution", "faces_found", "flagged_region", "feedback", "seconds"]


def register(sub) -> None:
    p = sub.add_parser("explain", help=VERBS["explain"],
                       description="Detect, align, score and explain each face; write DIR/results.csv (with the "
                                   "region that stands out against compliant faces, and the feedback in words) and "
                                   "DIR/maps/<input path>.npz/.png.")
    add_batch_options(p)
    add_model_options(p)
    add_scale_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--method", default="saliency", help="attribution method (default: the paper's saliency)")
    p.add_argument("--sample", choices=["astronaut"], action="append", default=[],
                   help="add a sample photo that ships with scikit-image")
    p.add_argument("--timings", type=Path, default=None, metavar="FILE",
                   help="write this run's files, wall seconds and, without a cluster, its seconds per stage ("
                        + "; ".join(f"{k}: {v}" for k, v in STAGES.items()) + ") to FILE (JSON)")
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


def save_side_by_side(path: Path, crop, plq, quality: float, outline=None) -> None:
    """The crop and its PLQ map side by side, the flagged part outlined (``figures.side_by_side_png``), written
    atomically to ``path``."""
    from ..figures import side_by_side_png

    atomic_save_png(path, side_by_side_png(crop, plq, quality, outline))


class ExplainStep:
    """The model and the output folder of a run, built once per process (``plqa_nb.scale``): ``prepare`` and
    ``compute`` for ``batch.process_files``. ``root``: the folder the output names are relative to. ``seconds``:
    wall seconds by stage over the run, ``STAGES``."""

    def __init__(self, model: argparse.Namespace, method: str, out: Path, root: Path):
        self.explainer = make_explainer(model, method=method)
        self.out, self.root = out, root
        self.seconds: Counter[str] = Counter()
        self.concurrent = computes_concurrently(self.explainer)  # ``scale.Step``

    def prepare(self, file: Path) -> PreparedFace:
        """``Explainer.prepare`` without the photo, which ``compute`` does not use (batches prepared ahead hold
        only their crops)."""
        with timed(self.seconds, "prepare"):
            return dataclasses.replace(self.explainer.prepare(file), photo=None)

    def timed_write(self, write, *args, **kwargs) -> None:
        """``write(*args, **kwargs)``, its seconds counted as output."""
        with timed(self.seconds, "output"):
            write(*args, **kwargs)

    def compute(self, items: list) -> list[dict]:
        from ..experiments.feedback import feedback  # the heavy part, once the run is accepted
        from ..regions import flag_part, region_masks, region_means
        from ..stages import as_face_crop

        explainer = self.explainer
        with timed(self.seconds, "network"):
            results = explainer.explain_prepared([p for _, p in items], keep_photo=False)
        faces = [as_face_crop(p) for _, p in items]
        rows = []
        for i, ((file, _), r) in enumerate(zip(items, results)):
            rel = Path("maps") / output_stem(file, self.root)
            npz, png = self.out / f"{rel}.npz", self.out / f"{rel}.png"
            with timed(self.seconds, "maps"):
                masks = region_masks(faces[i].landmarks, r.crop.shape[0])
                flag, outline = None, None
                if r.deviation is not None:  # from the network pass (``Explainer.explain_tensor``)
                    region, score, outline = flag_part(r.deviation.astype("float64"), masks,
                                                       explainer.compliant_norm().features)
                    flag = (region, score)
                said = feedback(region_means(r.plq, masks), r.quality, flagged=flag)
            extra = {} if r.deviation is None else {"deviation": r.deviation}
            write_output(file, self.timed_write, atomic_save_npz, npz, compress=False, crop=r.crop, plq=r.plq,
                         saliency=r.saliency, embedding=r.embedding, quality=r.quality, quality_raw=r.quality_raw,
                         matrix=r.matrix, **extra)
            write_output(file, self.timed_write, save_side_by_side, png, r.crop, r.plq, r.quality,
                         outline)
            rows.append({"file": str(file), "status": "ok", "error": "", "output": f"{rel}.npz",
                         "quality": f"{r.quality:.6f}", "quality_raw": f"{r.quality_raw:.6f}",
                         "backbone": r.backbone, "quality_method": r.quality_method, "attribution": r.attribution,
                         "faces_found": r.faces_found, "flagged_region": flag[0] if flag else "", "feedback": said})
        return rows


@writes_out()
def run(args: argparse.Namespace) -> int:
    from ..scale import run_files

    inputs = list(args.inputs) + sample_inputs(args.sample, args.out)
    if not inputs:
        raise SystemExit("plqa explain: give at least one INPUT (file or folder) or --sample")
    root = common_root(iter_image_files(inputs))
    table = open_table(args, args.out / "results.csv", COLUMNS)
    make_step = functools.partial(ExplainStep, model_options(args), args.method, args.out, root)
    summary = run_files(inputs, table, make_step, desc="plqa explain", outputs=args.out, **scale_options(args))
    if args.timings is not None:
        atomic_write_bytes(args.timings, json.dumps({"files": summary.ok + summary.errors, "wall_s": summary.wall_s,
                                                     "stage_seconds": summary.stage_seconds}, indent=2).encode())
    print_summary(summary, "explain")
    return 0
