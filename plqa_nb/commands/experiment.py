"""``plqa experiment masking|inpainting|icao``: the paper's analyses as resumable batch runs.

Each writes DIR/<experiment>.csv (several rows per photo; error rows name the file), one
DIR/<experiment>/<input path>.npz of images and PLQ maps per photo (what the figures are drawn
from, so a resumed run still draws every photo), and DIR/figures/*.png; a summary goes to stdout.
"""
from __future__ import annotations

import argparse
import csv
import functools
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from ..attribution import available_methods
from ..batch import ResultTable, atomic_save_csv, atomic_save_figure, atomic_save_png, common_root, output_stem
from ..errors import InputError
from ..experiments import options
from ..images import IMAGE_SUFFIXES, iter_image_files
from . import VERBS
from .common import (add_batch_options, add_model_options, add_scale_options, make_explainer, model_options,
                     print_summary, scale_options, writes_out)

if TYPE_CHECKING:
    from ..experiments.common import FaceResult, Panel

BASE = ["file", "status", "error", "output"]
# photos per batch: an analysis costs a second a face or more, so that small batches keep every worker busy where the
# photos are few, and cost a serial run nothing measurable (docs/results/analyses.md#on-workers)
BATCH_SIZE = 2


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
    add_batch_options(p, BATCH_SIZE)
    add_model_options(p)
    add_scale_options(p)
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


class Plan(NamedTuple):
    """What one analysis does with a batch: ``prepare`` (file → what ``experiment`` takes), ``experiment`` (a list
    of those → one ``FaceResult`` each), and ``write_files(out, stem, result)``, the photo's files beside its panels
    (None: none)."""
    prepare: Callable
    experiment: Callable
    write_files: Callable[[Path, Path, FaceResult], None] | None = None


class ExperimentStep:
    """One analysis over a run's photos, built once per process (``plqa_nb.scale``): the model from the verb's model
    options, the analysis's own options ``opts`` (``PLANS``), the output folder and the folder the output names are
    relative to. ``compute`` writes each photo's panels (DIR/<name>/<input path>.npz) and the plan's other files,
    and returns its rows. Its passes are not declared reentrant (``concurrent``), and they dwarf decoding and
    detection (``compute_bound``)."""

    concurrent = False
    compute_bound = True

    def __init__(self, name: str, model: argparse.Namespace, opts: argparse.Namespace, out: Path, root: Path):
        self.name, self.out, self.root = name, out, root
        self.explainer = make_explainer(model)
        self.plan = PLANS[name](self.explainer, opts)
        self.prepare = self.plan.prepare

    def compute(self, items: list) -> list[dict]:
        from ..experiments.common import save_panels

        rows = []
        for (file, _), res in zip(items, self.plan.experiment([p for _, p in items])):
            stem = output_stem(file, self.root)
            rel = Path(self.name) / f"{stem}.npz"
            save_panels(self.out / rel, res.panels)
            if self.plan.write_files is not None:
                self.plan.write_files(self.out, stem, res)
            rows += [{**{k: _fmt(v) for k, v in row.items()}, "file": str(file), "status": "ok", "error": "",
                      "output": str(rel)} for row in res.rows]
        return rows


def _aligned_crop(explainer) -> Callable:
    """``prepare`` for the analyses that take the aligned crop alone: file → ``FaceCrop``."""
    from ..experiments.common import as_face_crop

    return lambda file: as_face_crop(explainer.prepare(file))


def _masking_plan(explainer, opts: argparse.Namespace) -> Plan:
    from ..experiments import masking

    return Plan(_aligned_crop(explainer),
                lambda faces: masking.run(explainer, faces, opts.sizes, opts.per_size, opts.seed))


def _inpainting_plan(explainer, opts: argparse.Namespace) -> Plan:
    from ..experiments import inpainting
    from ..experiments.common import as_face_crop

    if opts.occlude:
        return Plan(_aligned_crop(explainer),
                    lambda faces: inpainting.run_occluded(explainer, faces, opts.occlude, opts.mask_from, opts.fill,
                                                          opts.repeats, opts.seed))
    mask_source = None if opts.mask_from in ("plq", "paper") else Path(opts.mask_from)

    def prepare(file: Path):
        prepared = explainer.prepare(file)
        mask = None if mask_source is None else inpainting.user_mask(find_mask(mask_source, file), prepared)
        return as_face_crop(prepared), mask

    def experiment(items):
        masks = None if mask_source is None else [m for _, m in items]
        return inpainting.run(explainer, [f for f, _ in items], masks, opts.fill, opts.repeats, opts.seed,
                              opts.mask_from if mask_source is None else "user")
    return Plan(prepare, experiment)


def _icao_plan(explainer, opts: argparse.Namespace) -> Plan:
    from ..experiments import icao
    from ..experiments.common import as_face_crop  # the --reference photo

    if opts.as_is:
        reference = None
        if opts.reference is not None:
            try:
                reference = as_face_crop(explainer.prepare(opts.reference))
            except InputError as exc:
                raise ValueError(f"--reference: {exc}") from None

        def experiment(faces):
            return icao.run_as_is(explainer, faces, reference, opts.seed)
    else:
        def experiment(faces):
            return icao.run(explainer, faces, opts.only, opts.seed, opts.methods)
    return Plan(_aligned_crop(explainer), experiment, functools.partial(_icao_files, opts))


def _icao_files(opts: argparse.Namespace, out: Path, stem: Path, res: FaceResult) -> None:
    """A photo's ``--save-images`` PNGs (DIR/images/<input path>/<variant>.png) and ``--methods`` localization rows
    (DIR/``LOCALIZATION_DIR``/<input path>.csv)."""
    if opts.save_images:
        for panel in res.panels:
            atomic_save_png(out / "images" / stem / f"{panel.label.replace(' ', '_')}.png", panel.image)
    if opts.methods and not opts.as_is:
        from ..evaluation.localization import COLUMNS

        atomic_save_csv(out / LOCALIZATION_DIR / f"{stem}.csv",
                        [{**r, "file": res.file, "status": "ok", "error": ""} for r in res.localization],
                        LOCALIZATION_BASE + COLUMNS)


# each analysis's Plan from the Explainer and its options, in a worker as in this process
PLANS = {"masking": _masking_plan, "inpainting": _inpainting_plan, "icao": _icao_plan}
LOCALIZATION_DIR = "localization"  # icao --methods: DIR/localization/<input path>.csv, a photo's rows
LOCALIZATION_BASE = ["file", "status", "error"]


def _run(args: argparse.Namespace, name: str, opts: argparse.Namespace) -> list[dict]:
    """Shared driver: the photos through ``ExperimentStep`` (here or on Dask workers, ``scale.run_files``), one
    npz of panels per photo, rows appended; returns the ok rows."""
    from ..scale import run_files

    if not args.inputs:
        raise SystemExit(f"plqa experiment {name}: give at least one INPUT (file or folder)")
    root = common_root(iter_image_files(args.inputs))
    table = ResultTable(args.out / f"{name}.csv", csv_columns(name), overwrite=args.overwrite, multi_row=True)
    make_step = functools.partial(ExperimentStep, name, model_options(args), opts, args.out, root)
    summary = run_files(args.inputs, table, make_step, desc=f"plqa experiment {name}", outputs=args.out,
                        **scale_options(args))
    print_summary(summary, f"experiment {name}")
    return _ok_rows(table.path)


def _localization_rows(out: Path, done: list[dict]) -> list[dict]:
    """The localization rows of the photos that icao.csv records as done (``done``, its ok rows), from their
    files under ``LOCALIZATION_DIR``; a photo done by a run without --methods has none (said on stderr)."""
    outputs = dict.fromkeys(r["output"] for r in done)
    rows, missing = [], 0
    for output in outputs:
        stem = Path(output).relative_to("icao").with_suffix("")  # icao/<input path>.npz
        path = out / LOCALIZATION_DIR / f"{stem}.csv"
        if path.exists():
            rows += _ok_rows(path)  # every row of these files is ok
        else:
            missing += 1
    if missing:
        print(f"plqa experiment icao: {missing} photo(s) were done by a run without --methods and have no "
              "localization rows: run again with --overwrite to measure them", file=sys.stderr)
    return rows


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

    opts = argparse.Namespace(sizes=args.sizes, per_size=args.per_size, seed=args.seed)
    rows = _run(args, "masking", opts)
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

    if args.occlude:
        icao.select_violations(args.occlude)  # unknown names fail before any work
        if args.mask_from not in inpainting.MASK_SOURCES:
            raise ValueError(f"--occlude takes --mask-from {' or '.join(inpainting.MASK_SOURCES)}")
    elif args.mask_from == "occluder":
        raise ValueError("--mask-from occluder needs --occlude (the occluders are synthetic)")
    elif args.mask_from not in ("plq", "paper") and not Path(args.mask_from).exists():
        raise FileNotFoundError(f"--mask-from {args.mask_from}: no such file or folder")
    opts = argparse.Namespace(occlude=args.occlude, mask_from=args.mask_from, fill=args.fill, repeats=args.repeats,
                              seed=args.seed)
    rows = _run(args, "inpainting", opts)
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

    if not args.as_is:
        icao.select_violations(args.only)  # unknown names fail before any work
    opts = argparse.Namespace(as_is=args.as_is, reference=args.reference, only=args.only, methods=args.methods,
                              save_images=args.save_images, seed=args.seed)
    rows = _run(args, "icao", opts)
    if args.methods and not args.as_is:
        loc_rows = _localization_rows(args.out, rows)
        atomic_save_csv(args.out / "localization.csv", loc_rows,
                        LOCALIZATION_BASE + list(evaluation_localization.COLUMNS))
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
