"""Options and helpers shared by the verbs that walk images."""
from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..backbones import DEFAULT_BACKBONE, available_backbones
from ..batch import ResultTable, atomic_write_bytes, output_lock
from ..detection import ALIGNED, DEFAULT_DETECTOR, DETECTORS
from ..images import MAX_PIXELS
from ..quality import available_estimators

if TYPE_CHECKING:
    from ..pipeline import Explainer

Verb = Callable[[argparse.Namespace], int]
SETTINGS_RECORDED_LATER = {"detector": "mtcnn"}  # not in older settings.json files: what their runs used


def _megapixels(text: str) -> int:
    """--max-pixels: megapixels → pixels."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of megapixels")
    return round(value * 1e6)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=DEFAULT_BACKBONE,  # checked when resolved: a registry may grow
                   help=f"face-recognition network: {', '.join(available_backbones())} or onnx:PATH[?options] "
                        f"(default {DEFAULT_BACKBONE}, works offline)")
    add_detector_option(p)
    p.add_argument("--quality", choices=available_estimators(), default=None,
                   help="quality estimator (default: the backbone's own choice)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="calibration bundle from `plqa calibrate` (default: the one shipped for the backbone)")
    p.add_argument("--norm", choices=("signed", "l1"), default=None,
                   help="Eq. 3 denominator: signed Σe (authors' code) or ‖e‖₁ (paper); default: the backbone's")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of every stochastic step")
    p.add_argument("--max-pixels", type=_megapixels, default=MAX_PIXELS, metavar="MP",
                   help=f"refuse photos above MP megapixels, judged from the file header before decoding "
                        f"(default {MAX_PIXELS / 1e6:g})")


def add_detector_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", choices=DETECTORS + (ALIGNED,), default=DEFAULT_DETECTOR,
                   help=f"face detector (default {DEFAULT_DETECTOR}; all work offline), or '{ALIGNED}': every image "
                        "is already the backbone's aligned crop (square; e.g. what --save-images writes), taken as it "
                        "is, without detection")


def add_batch_options(p: argparse.ArgumentParser, batch_size: int = 8) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders (searched recursively)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"faces per network pass, and per task on workers (default {batch_size})")
    p.add_argument("--overwrite", action="store_true", help="redo files already done and replace their outputs")
    p.add_argument("--debug", action="store_true", help="print tracebacks")


MODEL_OPTIONS = ("backbone", "quality", "calibration", "norm", "device", "seed", "max_pixels", "detector")


def model_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options of ``add_model_options`` alone: what ``make_explainer`` reads, small and picklable (a worker
    process builds its own model from them). Resolves the configuration once here, without loading a network, so
    that a bad --calibration stops the run before any worker starts (ValueError/KeyError naming the file)."""
    from ..config import resolve_config

    resolve_config(args.backbone, args.quality, args.calibration, norm=args.norm, seed=args.seed)
    return argparse.Namespace(**{k: getattr(args, k) for k in MODEL_OPTIONS})


def add_scale_options(p: argparse.ArgumentParser) -> None:
    """--workers / --scheduler / --threads: run the files on a Dask cluster (``plqa_nb.scale``)."""
    g = p.add_argument_group("scale (Dask; see docs/cluster.md)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="start a local cluster of N worker processes, the cores split between them; the "
                            "files go to them in batches of --batch-size")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786)")
    g.add_argument("--threads", type=positive_int, default=None, metavar="T",
                   help="torch threads per worker, or of this process without --workers/--scheduler (default: with "
                        "--workers, the cores split between the workers; otherwise the cores but one, left to "
                        "decoding and detecting the next batches, shared by the two batches a run with the "
                        "saliency computes at once; every core for `plqa experiment`, whose passes dwarf "
                        "detection)")


def scale_options(args: argparse.Namespace) -> dict:
    """``run_files``'s keyword arguments from the batch and scale options."""
    return {"batch_size": args.batch_size, "debug": args.debug, "workers": args.workers,
            "scheduler": args.scheduler, "threads": args.threads}


def writes_out(single_file: bool = False) -> Callable[[Verb], Verb]:
    """Decorate a verb's ``run(args)`` to run whole inside ``output_lock(args.out, single_file)``: one writer
    per output folder, stale temporaries of killed runs removed first."""
    def wrap(run: Verb) -> Verb:
        @functools.wraps(run)
        def locked(args: argparse.Namespace) -> int:
            with output_lock(args.out, single_file):
                return run(args)
        return locked
    return wrap


def make_explainer(args: argparse.Namespace, method: str = "saliency", quality_params: dict | None = None):
    from ..pipeline import Explainer

    explainer = Explainer(backbone=args.backbone, quality=args.quality, method=method, calibration=args.calibration,
                          device=args.device, seed=args.seed, norm=args.norm, quality_params=quality_params,
                          detector=args.detector, max_pixels=args.max_pixels)
    return explainer


def computes_concurrently(explainer: Explainer) -> bool:
    """A verb step's ``concurrent`` (``scale.Step``): the Explainer's passes may run on several threads at once
    (``Explainer.reentrant``) and run on the CPU, where two at a time use the cores that one leaves idle (on a GPU
    they would queue on the device)."""
    return explainer.reentrant and explainer.device.type == "cpu"


def open_table(args: argparse.Namespace, path: Path, columns: list[str], **options) -> ResultTable:
    """The verb's results table (``batch.ResultTable``), after the model options resolve (``resolve_config``: a
    calibration bundle for another estimator, say, is refused before a new table is written). An existing table's
    columns are checked first, so that refusing it loads no model code."""
    def resolve() -> None:
        from ..config import resolve_config

        resolve_config(args.backbone, args.quality, args.calibration, norm=args.norm, seed=args.seed,
                       detector=args.detector, max_pixels=args.max_pixels)

    if path.exists() and not args.overwrite:
        table = ResultTable(path, columns, **options)
        resolve()
        return table
    resolve()
    return ResultTable(path, columns, overwrite=args.overwrite, **options)


def print_summary(summary, what: str) -> None:
    print(f"{what}: {summary.ok} ok, {summary.errors} error(s), {summary.skipped} already done "
          f"(of {summary.total}) → {summary.table}", file=sys.stderr)


def check_settings(out: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix results of other settings into ``out`` unless ``overwrite``."""
    path = out / "settings.json"
    if path.exists() and not overwrite:
        recorded_later = {k: v for k, v in SETTINGS_RECORDED_LATER.items() if k in settings}
        old = {**recorded_later, **json.loads(path.read_text())}
        if old != settings:
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            raise ValueError(f"{out} holds results of other settings {diff}; use --overwrite or another folder")
    atomic_write_bytes(path, (json.dumps(settings, indent=2) + "\n").encode())
