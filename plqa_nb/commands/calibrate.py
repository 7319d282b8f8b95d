"""``plqa calibrate``: fit a network's calibration bundle (every estimator's state, α, r, γ, and the compliant-face
norm) from development photos."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..calibration import TARGETS
from . import VERBS
from .common import add_model_options, writes_out

DEFAULT_ESTIMATORS = ("utility", "ers", "serfiq")  # FaceQAN costs 29 passes a face: asked for by name


def register(sub) -> None:
    p = sub.add_parser("calibrate", help=VERBS["calibrate"],
                       description="Fit, for a backbone, each quality estimator's own state (ERS's centre, the "
                                   "utility head), alpha and r of Eq. 2 and gamma of Eq. 6, and the compliant-face "
                                   "norm behind the region feedback, from compliant photos (one per identity); write "
                                   "them as one calibration bundle that every verb takes with --calibration.")
    p.add_argument("folder", type=Path, help="development photos: compliant faces, one per identity (recursive)")
    p.add_argument("--estimators", nargs="+", default=None, metavar="NAME[:N]",
                   help=f"estimators to calibrate, each optionally on the first N photos only (e.g. faceqan:26); "
                        f"default: {' '.join(DEFAULT_ESTIMATORS)} (or --quality alone when given)")
    p.add_argument("--default-estimator", default=None,
                   help="the bundle's default estimator (default: the backbone's, if calibrated, else the first)")
    p.add_argument("--target", choices=TARGETS, default="utility",
                   help="utility (default): Q̂ = probability of a match at FMR 1e-3, from degraded copies of the "
                        "photos; spread: Q̂ stretched over the photos' own range")
    p.add_argument("--compliant", type=Path, default=None,
                   help="ICAO-compliant photos for gamma and the compliant-face norm (default: the development photos)")
    p.add_argument("--folds", type=int, default=5,
                   help="identity-disjoint folds for the held-out predictions of a trained estimator (default 5)")
    p.add_argument("--note", default="", help="a line stored in the bundle, e.g. the photos' source and licence")
    p.add_argument("--out", type=Path, required=True, help="calibration bundle (JSON) to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--check", action="store_true",
                   help="write nothing: refit and compare with the bundle at --out (exit 1 when they differ)")
    add_model_options(p)
    p.set_defaults(func=run)


def parse_estimators(names: list[str]) -> dict[str, int | None]:
    """["utility", "faceqan:26"] → {"utility": None, "faceqan": 26}; ValueError on an unknown name or a bad N."""
    from ..quality import estimator_class

    out: dict[str, int | None] = {}
    for item in names:
        name, _, count = item.partition(":")
        estimator_class(name)  # KeyError listing the available ones
        if count and (not count.isdigit() or int(count) < 2):
            raise ValueError(f"--estimators {item}: N must be an integer ≥ 2")
        out[name] = int(count) if count else None
    return out


def _faces(prepare, folder: Path) -> list:
    from ..stages import aligned_faces

    faces = aligned_faces(folder, prepare)
    if len(faces) < 6:
        raise ValueError(f"{folder}: {len(faces)} photo(s) with a face; a calibration needs at least 6")
    return faces


# How far a refit may land from the stored bundle and still count as the same: float32 results follow the CPU's
# kernels and the number of threads, and the fits carry them on (utility's α moved by 1.7e-4 relative between one and
# two threads on one machine, 3.9e-4 between two machines). Scalars: relative; vectors and arrays: the largest
# difference relative to the largest magnitude; the mean face (0..255 integers): ±1.
CHECK_REL = 2e-3


def compare_bundles(fitted, stored, rel: float = CHECK_REL) -> int:
    """Print, per entry, whether a refitted bundle matches a stored one (every number within ``rel``, the command
    line aside); 0 when all do, 1 otherwise."""
    a, b = fitted.record(), stored.record()
    a.pop("made_with"), b.pop("made_with")
    same = True
    for key in sorted(set(a) | set(b)):
        entries = set(a.get(key) or {}) | set(b.get(key) or {}) if key == "estimators" else {key}
        for name in sorted(entries):
            x = a.get(key) if key != "estimators" else a[key].get(name)
            y = b.get(key) if key != "estimators" else b[key].get(name)
            ok = _close(x, y, rel)
            same &= ok
            label = f"{key}.{name}" if key == "estimators" else key
            print(f"{label}: {'as in' if ok else 'DIFFERS from'} {stored.source}", file=sys.stderr)
    return 0 if same else 1


def _close(a, b, rel: float) -> bool:
    import numpy as np

    if isinstance(a, dict) and isinstance(b, dict):
        if "float16_base64" in a and "float16_base64" in b:  # a packed array of the compliant-face norm
            from ..attribution.deviation import unpack_array

            return _close(unpack_array(a), unpack_array(b), rel)
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        try:
            x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
        except (TypeError, ValueError):  # a list of records
            return len(a) == len(b) and all(_close(p, q, rel) for p, q in zip(a, b))
        if x.shape != y.shape:
            return False
        if x.ndim == 3 and x.shape[-1] == 3 and np.all(x == np.round(x)):  # the mean face, 0..255
            return bool(np.abs(x - y).max(initial=0) <= 1)
        return bool(np.abs(x - y).max(initial=0) <= rel * max(np.abs(y).max(initial=0), 1e-12))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)
    return a == b


def command_line(args: argparse.Namespace, estimators: dict[str, int | None], default: str, norm: str) -> str:
    """The command that reproduces a bundle (stored in it as ``made_with``), with the note after a dash."""
    names = " ".join(name if n is None else f"{name}:{n}" for name, n in estimators.items())
    compliant = f" --compliant {args.compliant}" if args.compliant else ""
    compliant += f" --detector {args.detector}"  # the crops depend on it, whatever the default of the day
    line = (f"plqa calibrate {args.folder} --backbone {args.backbone} --estimators {names} --default-estimator "
            f"{default} --norm {norm} --target {args.target}{compliant} --folds {args.folds} --seed {args.seed}")
    return line + (f" — {args.note}" if args.note else "")


@writes_out(single_file=True)
def run(args: argparse.Namespace) -> int:
    if args.check and not args.out.exists():
        raise ValueError(f"--check: {args.out} does not exist")
    if args.out.exists() and not (args.overwrite or args.check):
        raise ValueError(f"{args.out} exists; use --overwrite to replace it")
    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    for folder in (args.folder, args.compliant):
        if folder is not None and not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
    import torch  # the heavy part, once the run is accepted

    from ..backbones import load_backbone
    from ..batch import atomic_write_bytes
    from ..calibration.fit import calibrate_bundle
    from ..config import load_calibration, read_bundle
    from ..stages import prepare_face

    estimators = parse_estimators(args.estimators or ([args.quality] if args.quality else list(DEFAULT_ESTIMATORS)))
    base = load_calibration(args.calibration) if args.calibration else None
    device = torch.device(args.device)
    backbone = load_backbone(args.backbone, device)

    def prepare(file):
        return prepare_face(file, backbone, device, args.max_pixels, args.detector)

    default = args.default_estimator or (backbone.defaults.quality if backbone.defaults.quality in estimators
                                         else next(iter(estimators)))
    norm = args.norm or (base.norm if base else backbone.defaults.norm)
    t0 = time.perf_counter()
    dev = _faces(prepare, args.folder)
    compliant = _faces(prepare, args.compliant) if args.compliant else None
    print(f"{len(dev)} development faces ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    def progress(name, cal) -> None:
        print(f"{name}: α {cal.alpha:.6g}, r {cal.r:.6g}, γ {cal.gamma:.4g} on {cal.photos} photos "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    bundle = calibrate_bundle(backbone, dev, estimators, default, norm, args.target, compliant, args.folds,
                              args.seed, device, command_line(args, estimators, default, norm), progress)
    if base is not None:
        bundle = base.merged(bundle)
    if args.check:
        return compare_bundles(bundle, read_bundle(args.out))
    atomic_write_bytes(args.out, bundle.text().encode())
    print(f"wrote {args.out}: {backbone.name}, estimators {', '.join(bundle.estimators)} (default {default}), "
          f"norm {norm}, match threshold {bundle.match_threshold}, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0
