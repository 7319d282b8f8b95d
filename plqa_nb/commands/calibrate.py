"""``plqa calibrate``: fit an estimator's per-backbone state, alpha, r (Eq. 2) and gamma (Eq. 6) from photos."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..batch import atomic_write_bytes
from ..errors import InputError
from ..images import iter_image_files
from ..quality import CALIBRATION_TARGETS
from . import VERBS
from .common import add_model_options, make_explainer, writes_out

if TYPE_CHECKING:
    from ..stages import FaceCrop


def register(sub) -> None:
    p = sub.add_parser("calibrate", help=VERBS["calibrate"],
                       description="Fit, for a backbone and a quality estimator, the estimator's own state (ERS's "
                                   "centre, the utility head), alpha and r of Eq. 2 and gamma of Eq. 6 from "
                                   "compliant photos, one per identity; write them as a calibration JSON that "
                                   "every verb takes with --calibration.")
    p.add_argument("folder", type=Path, help="development photos: compliant faces, one per identity (recursive)")
    p.add_argument("--target", choices=CALIBRATION_TARGETS, default="utility",
                   help="utility (default): Q̂ = probability of a match at FMR 1e-3, from degraded copies of the "
                        "photos; spread: Q̂ stretched over the photos' own range (the previous rule)")
    p.add_argument("--compliant", type=Path, default=None,
                   help="ICAO-compliant photos for gamma (default: the development photos)")
    p.add_argument("--folds", type=int, default=5,
                   help="identity-disjoint folds for the held-out predictions of a trained estimator (default 5)")
    p.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON")
    add_model_options(p)
    p.set_defaults(func=run)


def _faces(explainer, folder: Path) -> list[FaceCrop]:
    from ..stages import as_face_crop

    faces, skipped = [], []
    for f in iter_image_files([folder]):
        try:
            faces.append(as_face_crop(explainer.prepare(f)))
        except InputError as exc:
            skipped.append(str(exc))
    for msg in skipped:
        print(f"skipped {msg}", file=sys.stderr)
    if len(faces) < 2:
        raise ValueError(f"{folder}: fewer than 2 photos with a face")
    return faces


@writes_out(single_file=True)
def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists; use --overwrite to replace it")
    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    for folder in (args.folder, args.compliant):
        if folder is not None and not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
    from ..quality.calibration import calibrate  # the heavy part, once the run is accepted

    explainer = make_explainer(args)
    dev = _faces(explainer, args.folder)
    compliant = _faces(explainer, args.compliant) if args.compliant else None
    config, extra = calibrate(explainer, dev, args.target, compliant, args.folds)
    record = {"alpha": config.alpha, "r": config.r, "gamma": config.gamma, "backbone": config.backbone,
              "quality_method": config.quality, "norm": config.norm, "target": args.target, "photos": len(dev),
              "seed": config.seed, **extra}
    atomic_write_bytes(args.out, (json.dumps(record, indent=2) + "\n").encode())
    hidden = {*config.make_estimator().calibration_keys, "compliant_norm"}  # long arrays: in the file only
    print(json.dumps({k: v for k, v in record.items() if k not in hidden}))
    return 0
