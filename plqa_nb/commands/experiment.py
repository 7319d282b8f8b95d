"""``plqa experiment masking|inpainting|icao``: the paper's analyses as resumable batch runs.

Each writes DIR/<experiment>.csv (several rows per photo; error rows name the file), one
DIR/<experiment>/<input path>.npz of images and PLQ maps per photo (what the figures are drawn
from, so a resumed run still draws every photo), and DIR/figures/*.png; a summary goes to stdout.
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..attribution import available_methods
from ..batch import (ResultTable, atomic_save_csv, atomic_save_figure, atomic_save_png, common_root, output_stem,
                     run_batch)
from ..errors import InputError
from ..experiments import options
from ..images import IMAGE_SUFFIXES, iter_image_files
from . import VERBS
from .common import add_batch_options, add_model_options, make_explainer, print_summary, writes_out

if TYPE_CHECKING:
    from ..experiments.common import FaceResult, Panel

BASE = ["file", "status", "error", "output"]


def csv_columns(name: str) -> list[str]:
    """The columns of DIR/<name>.csv: the file's status, the experiment's own columns, the seconds."""
    from ..experiments import icao, inpainting, masking  # the analyses' modules load torch: only for a run

    return BASE + list({"masking": masking, "inpainting": inpainting, "icao": icao}[name].COLUMNS) + ["seconds"]


def register(sub) -> None:
    p = sub.add_parser("experiment", help=VERBS["experiment"],
                       description="Reproducible batch experiments on aligned faces; see each sub-command.")
    exp = p.add_subparsers(dest="experiment", required=True)

    m = exp.add_parser("masking", help="random black squares on good faces (Eqs. 7-8, Figs. 5-6)")
    _common_options(m)
    sizes = options.MASKING_SIZES
    m.add_argument("--sizes", type=_number, nargs="+", default=list(sizes),
                   help=f"square sides on the paper's 112-px scale (default {' '.join(map(str, sizes))})")
    m.add_argument("--per-size", type=int, default=1, help="squares per size and face (default 1)")
    m.set_defaults(func=run_masking)

    i = exp.add_parser("inpainting", help="fill what the explanation blames, Q̂ before/after with std (Figs. 3-4)")
    _common_options(i)
    i.add_argument("--mask-from", default=options.DEFAULT_MASK, metavar="plq|paper|occluder|FILE_OR_FOLDER",
                   help="'plq' (default: what the explanation blames — where the counterfactual map says the "
                        "compliant mean face would raise the quality most, or, where no window of it would, the region "
                        "that stands out against compliant faces), 'paper' (the paper's rule: low-PLQ "
                        "regions of the saliency map), 'occluder' (with "
                        "--occlude: the exact synthetic occluder), one mask image for every photo, or a folder with "
                        "<stem>_mask.<ext> or <stem>.<ext> per photo; white = inpaint, of the photo's or the crop's "
                        "size")
    i.add_argument("--occlude", action="append", default=None, metavar="CATEGORY",
                   help="inpaint synthetic ICAO violations of each (compliant) photo instead of the photo itself, "
                        "e.g. 'occlusion' or 'sunglasses' (as --only of `plqa experiment icao`); repeatable")
    i.add_argument("--fill", choices=options.FILLS, default=options.DEFAULT_FILL,
                   help=f"how the mask is filled (default {options.DEFAULT_FILL}: the compliant mean face by Poisson "
                        "editing; mirror: the face's other half; telea, ns: OpenCV inpainting)")
    i.add_argument("--repeats", type=int, default=10, help="quality estimates (seeds) for mean and std (default 10)")
    i.set_defaults(func=run_inpainting)

    c = exp.add_parser("icao", help="synthetic ICAO violations and the PLQ per face region (Fig. 7)")
    _common_options(c)
    c.add_argument("--only", action="append", default=None, metavar="CATEGORY",
                   help=f"keep a category ({', '.join(options.ICAO_CATEGORIES)}) or a violation "
                        f"({', '.join(options.ICAO_VIOLATIONS)}); repeatable")
    c.add_argument("--save-images", action="store_true",
                   help="write every variant to DIR/images/<input>/, as the aligned crop (read it back with "
                        "--detector aligned)")
    c.add_argument("--as-is", action="store_true",
                   help="no synthetic violations: the region table of the photos as they are (real non-compliance)")
    c.add_argument("--reference", type=Path, default=None,
                   help="with --as-is: a compliant photo to compare with (quality_ref, quality_lost)")
    c.add_argument("--methods", nargs="+", default=(), choices=available_methods(), metavar="M",
                   help="attribution methods whose localisation of the occluders to measure: DIR/localization.csv "
                        f"and localization_summary.csv (the map behind the feedback, {options.DRIVER}, is always one); "
                        f"e.g. {' '.join(available_methods())}")
    c.set_defaults(func=run_icao)


def _number(text: str) -> int | float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: a size must be positive")
    return int(value) if value.is_integer() else value


def _common_options(p: argparse.ArgumentParser) -> None:
    add_batch_options(p)
    add_model_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--examples", type=int, default=2, help="photos shown in the example grid (default 2)")


def _fmt(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6f}"
    return value


def _ok_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "ok"]


def _example_panels(out: Path, rows: list[dict], n: int) -> list[list[Panel]]:
    from ..experiments.common import load_panels

    outputs = list(dict.fromkeys(r["output"] for r in rows))[:n]
    return [load_panels(out / o) for o in outputs]


def _run(args: argparse.Namespace, name: str, prepare: Callable,
         experiment: Callable[[object, list], list[FaceResult]], after_face: Callable | None = None):
    """Shared driver: batch over the inputs, one npz of panels per photo, rows appended; returns the ok rows."""
    from ..experiments.common import save_panels

    if not args.inputs:
        raise SystemExit(f"plqa experiment {name}: give at least one INPUT (file or folder)")
    root = common_root(iter_image_files(args.inputs))
    table = ResultTable(args.out / f"{name}.csv", csv_columns(name), overwrite=args.overwrite, multi_row=True)

    def compute(items):
        rows = []
        for (file, _), res in zip(items, experiment([p for _, p in items])):
            stem = output_stem(file, root)
            rel = Path(name) / f"{stem}.npz"
            save_panels(args.out / rel, res.panels)
            if after_face is not None:
                after_face(stem, res)
            rows += [{**{k: _fmt(v) for k, v in row.items()}, "file": str(file), "status": "ok", "error": "",
                      "output": str(rel)} for row in res.rows]
        return rows

    summary = run_batch(args.inputs, table, prepare, compute, batch_size=args.batch_size, debug=args.debug,
                        desc=f"plqa experiment {name}")
    print_summary(summary, f"experiment {name}")
    return _ok_rows(table.path)


def _localization_table(args: argparse.Namespace) -> ResultTable:
    """DIR/localization.csv, holding only the rows of photos that icao.csv records as done (a kill between the
    two writes leaves rows of a photo that will be redone)."""
    from ..evaluation.localization import COLUMNS

    columns = ["file", "status", "error"] + COLUMNS
    table = ResultTable(args.out / "localization.csv", columns, overwrite=args.overwrite, output_columns=(),
                        multi_row=True)
    main = args.out / "icao.csv"
    done = {r["file"] for r in _ok_rows(main)} if main.exists() and not args.overwrite else set()
    kept = [r for r in _ok_rows(table.path) if r["file"] in done]
    atomic_save_csv(table.path, kept, columns)
    return table


def _print_table(records: list[dict]) -> None:
    """Tab-separated, every column any record has (a reference row has fewer: its cells stay empty)."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    if records:
        print("\t".join(columns))
        for r in records:
            print("\t".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (r.get(k, "") for k in columns)))


@writes_out()
def run_masking(args: argparse.Namespace) -> int:
    from ..experiments import masking, plots
    from ..experiments.common import as_face_crop

    explainer = make_explainer(args)
    rows = _run(args, "masking", lambda f: as_face_crop(explainer.prepare(f)),
                lambda faces: masking.run(explainer, faces, args.sizes, args.per_size, args.seed))
    if rows:
        atomic_save_figure(args.out / "figures" / "masking_distributions.png", plots.masking_distributions(rows))
        atomic_save_figure(args.out / "figures" / "masking_examples.png",
                           plots.panel_grid(_example_panels(args.out, rows, args.examples), "Random black squares"))
        _print_table(masking.summary(rows))
    return 0


def find_mask(source: Path, file: Path) -> Path:
    """The mask image for ``file``: ``source`` itself, or in the folder ``source`` <stem>_mask.* before <stem>.*."""
    if not source.is_dir():
        return source
    for pattern in (f"{file.stem}_mask.*", f"{file.stem}.*"):
        found = sorted(p for p in source.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES
                       and p.resolve() != file.resolve())
        if found:
            return found[0]
    raise InputError(str(file), f"no mask <stem>_mask.* or <stem>.* in {source}")


@writes_out()
def run_inpainting(args: argparse.Namespace) -> int:
    from ..experiments import icao, inpainting, plots
    from ..experiments.common import as_face_crop

    explainer = make_explainer(args)
    if args.occlude:
        icao.select_violations(args.occlude)  # unknown names fail before any work
        if args.mask_from not in inpainting.MASK_SOURCES:
            raise ValueError(f"--occlude takes --mask-from {' or '.join(inpainting.MASK_SOURCES)}")

        def prepare(file: Path):
            return as_face_crop(explainer.prepare(file))

        def experiment(faces):
            return inpainting.run_occluded(explainer, faces, args.occlude, args.mask_from, args.fill, args.repeats,
                                           args.seed)
    else:
        if args.mask_from == "occluder":
            raise ValueError("--mask-from occluder needs --occlude (the occluders are synthetic)")
        mask_source = None if args.mask_from in ("plq", "paper") else Path(args.mask_from)
        if mask_source is not None and not mask_source.exists():
            raise FileNotFoundError(f"--mask-from {mask_source}: no such file or folder")

        def prepare(file: Path):
            prepared = explainer.prepare(file)
            mask = None if mask_source is None else inpainting.user_mask(find_mask(mask_source, file), prepared)
            return as_face_crop(prepared), mask

        def experiment(items):
            masks = None if mask_source is None else [m for _, m in items]
            return inpainting.run(explainer, [f for f, _ in items], masks, args.fill, args.repeats, args.seed,
                                  args.mask_from if mask_source is None else "user")

    rows = _run(args, "inpainting", prepare, experiment)
    if rows:
        atomic_save_figure(args.out / "figures" / "inpainting_sorted.png", plots.inpainting_sorted(rows))
        if args.occlude:  # a line per photo: each variant before and after
            lines = _example_panels(args.out, rows, args.examples)
        else:
            pairs = _example_panels(args.out, rows, 3 * args.examples)
            lines = [sum(pairs[k:k + 3], []) for k in range(0, len(pairs), 3)]  # three before/after pairs a line
        atomic_save_figure(args.out / "figures" / "inpainting_pairs.png",
                           plots.panel_grid(lines, "Before and after inpainting"))
        _print_table(inpainting.summary_by_violation(rows))
    return 0


@writes_out()
def run_icao(args: argparse.Namespace) -> int:
    from ..evaluation import localization as evaluation_localization
    from ..experiments import icao, plots
    from ..experiments.common import as_face_crop

    explainer = make_explainer(args)
    if args.as_is:
        reference = None
        if args.reference is not None:
            try:
                reference = as_face_crop(explainer.prepare(args.reference))
            except InputError as exc:
                raise ValueError(f"--reference: {exc}") from None

        def experiment(faces):
            return icao.run_as_is(explainer, faces, reference, args.seed)
    else:
        icao.select_violations(args.only)  # unknown names fail before any work

        def experiment(faces):
            return icao.run(explainer, faces, args.only, args.seed, args.methods)

    localization = _localization_table(args) if args.methods and not args.as_is else None

    def after_face(stem: Path, res: FaceResult) -> None:
        if args.save_images:
            for panel in res.panels:
                atomic_save_png(args.out / "images" / stem / f"{panel.label.replace(' ', '_')}.png", panel.image)
        if localization is not None:
            localization.append([{**r, "file": res.file, "status": "ok", "error": ""} for r in res.localization])

    rows = _run(args, "icao", lambda f: as_face_crop(explainer.prepare(f)), experiment, after_face)
    if localization is not None:
        loc_rows = _ok_rows(localization.path)
        summary = evaluation_localization.summary(loc_rows)
        atomic_save_csv(args.out / "localization_summary.csv", summary, list(summary[0]) if summary else ["method"])
        _print_table(summary)
    if rows:
        atomic_save_figure(args.out / "figures" / "icao_grid.png",
                           plots.panel_grid(_example_panels(args.out, rows, args.examples), "ICAO-style violations"))
        if not args.as_is:
            atomic_save_figure(args.out / "figures" / "icao_quality_lost.png", plots.delta_by_violation(rows))
        _print_table(icao.summary(rows))
    return 0
