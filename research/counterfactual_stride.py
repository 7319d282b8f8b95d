"""The inpainting experiment's figures and time at several strides of the counterfactual map's window.

    python research/counterfactual_stride.py ../shared/faces/london/smiling [--limit 40] [--strides 7.5 10 15]

The counterfactual map (``attribution.counterfactual``) behind the inpainting mask costs one forward pass per
window position, and is nearly all of the time of the paper's analyses. A coarser stride is cheaper; this measures
whether the inpainting shares (``inpainting.summary``: Q̂ up / down beyond one std, empty mask) stay within a
point of the default's, over the ICAO generator's occlusion variants of the folder's faces (``--mask-from plq``,
mean-face fill, one repeat, seed 0). Run it on development photos: the default stride is chosen there.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from plqa_nb.attribution.counterfactual import CounterfactualMethod
from plqa_nb.experiments import common, inpainting
from plqa_nb.pipeline import Explainer
from plqa_nb.stages import aligned_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="compliant face photos (development photos)")
    ap.add_argument("--limit", type=int, default=40, help="first N photos (sorted by name)")
    ap.add_argument("--backbone", default="dlib-resnet")
    ap.add_argument("--strides", type=float, nargs="+", default=[7.5, 10.0, 15.0], help="px at the 112-px scale")
    args = ap.parse_args()
    explainer = Explainer(args.backbone)
    faces = aligned_faces(args.folder, explainer.prepare, args.limit)
    defaults = CounterfactualMethod.__init__.__defaults__
    window, _, per_eval, norm = defaults
    print(f"{len(faces)} faces of {args.folder.name}, {explainer.backbone.name} + {explainer.estimator.name}, "
          f"window {window:g} px at 112")
    print("| stride (px at 112) | seconds | up / down / empty |\n|---:|---:|---|")
    try:
        for stride in args.strides:
            # the experiments build the method with its defaults: only the stride changes between the runs
            CounterfactualMethod.__init__.__defaults__ = (window, stride, per_eval, norm)
            common._MAP_CACHE.clear()  # the cache keys on the model, not on the method's parameters
            t0 = time.perf_counter()
            rows = common.table(inpainting.run_occluded(explainer, faces, "occlusion", "plq", repeats=1))
            s = inpainting.summary(rows)
            print(f"| {stride:g} | {time.perf_counter() - t0:.0f} | {100 * s['up']:.1f} / {100 * s['down']:.1f} / "
                  f"{100 * s['empty']:.1f} % |", flush=True)
    finally:
        CounterfactualMethod.__init__.__defaults__ = defaults


if __name__ == "__main__":
    main()
