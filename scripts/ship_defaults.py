"""Fit the shipped defaults of dlib-resnet from the London *smiling* photos (the neutral ones stay unseen):
the utility head (``plqa_nb/shipped/heads/dlib-resnet.json``), ERS's centre
(``plqa_nb/shipped/ui_centres/dlib-resnet.json``), the compliant-face norm for localising defects
(``plqa_nb/shipped/norms/dlib-resnet.json``) and the utility calibration (α, r) of every estimator and
γ, printed as the ``BackboneDefaults`` of ``plqa_nb/backbones/dlib_resnet.py``.

    python scripts/ship_defaults.py ../shared/faces/london/smiling            # write the JSON files, print
    python scripts/ship_defaults.py ../shared/faces/london/smiling --check    # compare with what ships

Every estimator goes through ``plqa_nb.quality.calibration.calibrate`` (what ``plqa calibrate`` runs), seed 0.
FaceQAN costs 29 forward and backward passes per image, so it is calibrated on the first 26 identities only.
About 20 minutes on 2 CPU cores, 13 of them FaceQAN's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from plqa_nb.backbones import load_backbone
from plqa_nb.batch import atomic_write_bytes
from plqa_nb.images import iter_image_files
from plqa_nb.pipeline import Explainer
from plqa_nb.quality.calibration import calibrate
from plqa_nb.stages import as_face_crop

SHIPPED = Path(__file__).resolve().parents[1] / "plqa_nb" / "shipped"
ESTIMATORS = {"utility": None, "ers": None, "serfiq": None, "faceqan": 26}  # name → identities used (None: all)
MADE_WITH = ("scripts/ship_defaults.py <London smiling photos> (seed 0; {n} photos of the Face Research Lab London "
             "Set, CC BY 4.0, DeBruine & Jones 2017)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="the London smiling photos")
    ap.add_argument("--check", action="store_true", help="compare with the shipped files and defaults, write nothing")
    ap.add_argument("--only", nargs="*", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    args = ap.parse_args()
    backbone = load_backbone("dlib-resnet")
    prep = Explainer(backbone, quality="ers")
    faces = [as_face_crop(prep.prepare(f)) for f in sorted(iter_image_files([args.folder]))]
    fitted, ok = {}, True
    for name in args.only:
        t0 = time.perf_counter()
        dev = faces[:ESTIMATORS[name]]
        config, extra = calibrate(Explainer(backbone, quality=name, calibration=_uncalibrated(name)), dev)
        fitted[name] = (config, extra, len(dev))
        print(f"{name}: α {config.alpha:.6g}, r {config.r:.6g}, γ {config.gamma:.4g} on {len(dev)} photos, "
              f"threshold {extra['match_threshold']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    files = {}
    if "utility" in fitted:
        _, extra, n = fitted["utility"]
        files[SHIPPED / "heads" / "dlib-resnet.json"] = {
            "backbone": "dlib-resnet", "weights_sha1": backbone.fingerprint(), "made_with": MADE_WITH.format(n=n),
            "inputs": "[trunk features (256), unit embedding (128), log descriptor norm (1), highlights, shadows]",
            "head_bias": extra["head_bias"], "head_weights": extra["head_weights"]}
    if "ers" in fitted:
        _, extra, n = fitted["ers"]
        files[SHIPPED / "ui_centres" / "dlib-resnet.json"] = {
            "backbone": "dlib-resnet", "weights_sha1": backbone.fingerprint(), "made_with": MADE_WITH.format(n=n),
            "centre": extra["ui_centre"]}
    norms = {name: extra["compliant_norm"] for name, (_, extra, _) in fitted.items()}
    if norms:  # the norm does not depend on the estimator: stored once
        n = max(count for _, _, count in fitted.values())
        files[SHIPPED / "norms" / "dlib-resnet.json"] = {
            "backbone": "dlib-resnet", "weights_sha1": backbone.fingerprint(), "made_with": MADE_WITH.format(n=n),
            **next(iter(norms.values()))}
    for path, record in files.items():
        if args.check:
            shipped = json.loads(path.read_text())
            same = all(_close(shipped.get(k), v, rel=1e-4) for k, v in record.items() if k != "made_with")
            ok &= same
            print(f"{path.name} in {path.parent.name}: {'as shipped' if same else 'DIFFERS from the shipped file'}")
        else:
            text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n"
            atomic_write_bytes(path, text.encode())
            print(f"wrote {path}")
    scaling = ", ".join(f'"{k}": ({c.alpha:.5g}, {c.r:.6g})' for k, (c, _, _) in fitted.items())
    default = fitted.get("utility", next(iter(fitted.values())))[0]
    print(f"BackboneDefaults(quality=\"utility\", scaling={{{scaling}}}, gamma={default.gamma:.4g}, norm=\"l1\")")
    if args.check:
        shipped = backbone.defaults
        for name, (config, _, _) in fitted.items():
            same = _close(shipped.scaling.get(name), (config.alpha, config.r), rel=1e-3)
            ok &= same
            print(f"{name}: shipped (α, r) {shipped.scaling.get(name)} {'≈' if same else '≠'} fitted")
    return 0 if ok else 1


def _uncalibrated(quality: str) -> dict:
    """A placeholder calibration (α = 1, r = 0): calibrate replaces it; its state keys come from the fit."""
    return {"alpha": 1.0, "r": 0.0, "gamma": 10.0, "backbone": "dlib-resnet", "quality_method": quality,
            "norm": "l1"}


def _close(a, b, rel: float = 1e-6) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)
    return a == b


if __name__ == "__main__":
    sys.exit(main())
