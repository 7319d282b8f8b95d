"""``plqa calibrate``: fit alpha, r (Eq. 2) and gamma (Eq. 6) for a backbone from photos."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..batch import atomic_write_bytes
from ..errors import InputError
from ..images import iter_image_files
from ..pipeline import crops_to_tensor
from ..quality.calibration import calibrate
from .common import add_model_options, make_explainer, writes_out


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the quality scaling and gamma from a development set")
    p.add_argument("folder", type=Path, help="development photos (folder, recursive)")
    p.add_argument("--compliant", type=Path, default=None,
                   help="ICAO-compliant photos for gamma (default: the development photos)")
    p.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON")
    add_model_options(p)
    p.set_defaults(func=run)


def _crops(explainer, folder: Path):
    crops, skipped = [], []
    for f in iter_image_files([folder]):
        try:
            crops.append(explainer.prepare(f).aligned.crop)
        except InputError as exc:
            skipped.append(str(exc))
    for msg in skipped:
        print(f"skipped {msg}", file=sys.stderr)
    if len(crops) < 2:
        raise ValueError(f"{folder}: fewer than 2 photos with a face")
    return crops_to_tensor(crops, explainer.device)


@writes_out(single_file=True)
def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists; use --overwrite to replace it")
    explainer = make_explainer(args)
    dev = _crops(explainer, args.folder)
    compliant = _crops(explainer, args.compliant) if args.compliant else None
    config, extra = calibrate(explainer, dev, compliant)
    record = {"alpha": config.alpha, "r": config.r, "gamma": config.gamma, "backbone": config.backbone,
              "quality_method": config.quality, "norm": config.norm, "photos": int(dev.shape[0]),
              "seed": config.seed, **extra}
    atomic_write_bytes(args.out, (json.dumps(record, indent=2) + "\n").encode())
    print(json.dumps({k: v for k, v in record.items() if k not in extra}))
    return 0
