"""How often does Q̂ drop under a real degradation? Per backbone and quality estimator.

For each photo: a 50-px black square (112-px scale, random position in the inner 90 %
of the crop, seeded) and a Gaussian blur with sigma = 3 px; the share of photos whose
Q̂ is lower than the original's. Prints a markdown table (README, "Quality estimators").

    .venv/bin/python scripts/estimator_sensitivity.py --backbone dlib-resnet --estimators serfiq faceqan
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from plqa_nb.data import london
from plqa_nb.degradations import black_square, gaussian_blur, random_square_position, to_crop_px
from plqa_nb.pipeline import Explainer, crops_to_tensor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="dlib-resnet")
    ap.add_argument("--estimators", nargs="+", default=["serfiq", "faceqan"])
    ap.add_argument("--limit", type=int, default=None, help="first N London neutral photos (default all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    prep = Explainer(args.backbone, quality="serfiq")
    crops = [prep.prepare(f).aligned.crop for f in london("neutral", args.limit)]
    s = prep.backbone.crop_size
    size = to_crop_px(50, s)
    rng = np.random.default_rng(args.seed)
    variants = {"square 50 px": [black_square(c, *random_square_position(rng, s, size), size) for c in crops],
                "blur σ=3 px": [gaussian_blur(c, 3.0) for c in crops]}
    print(f"{len(crops)} London neutral photos, backbone {args.backbone}, seed {args.seed}\n")
    print("| backbone | estimator | Q̂ drops: square 50 px | Q̂ drops: blur σ=3 px | s/face |")
    print("|---|---|---|---|---|")
    for name in args.estimators:
        ex = Explainer(args.backbone, quality=name, seed=args.seed)
        t0 = time.perf_counter()
        q0 = np.concatenate([ex.quality(crops_to_tensor(crops[i:i + 16]))[0].numpy() for i in range(0, len(crops), 16)])
        per_face = (time.perf_counter() - t0) / len(crops)
        drops = []
        for imgs in variants.values():
            q = np.concatenate([ex.quality(crops_to_tensor(imgs[i:i + 16]))[0].numpy()
                                for i in range(0, len(imgs), 16)])
            drops.append(f"{(q < q0).mean():.0%}")
        print(f"| {args.backbone} | {name} | {drops[0]} | {drops[1]} | {per_face:.2f} |")


if __name__ == "__main__":
    main()
