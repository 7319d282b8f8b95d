"""The occlusion-type maps (counterfactual, occlusion) at two pass sizes: seconds, CPU, page faults, agreement.

    python research/images_per_pass.py ../shared/faces/london/neutral --old 64,16 --repeats 2

For batches of 1, 2, 4 and 8 aligned crops (the first photos of the folder), computes each map with ``--old``
windows per image and pass (the counterfactual's and the occlusion's, as Captum's ``perturbations_per_eval``: the
pass then holds that many times the batch's images), and with ``attribution.base.IMAGES_PER_PASS`` windowed copies
per pass, in turn, ``--repeats`` times. Prints a markdown table: wall and CPU seconds (user + system; the system
part apart) and minor page faults of the process over each call, and the largest difference between the maps.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from plqa_nb.attribution.base import IMAGES_PER_PASS
from plqa_nb.images import iter_image_files
from plqa_nb.pipeline import Explainer, crops_to_tensor

BATCHES = (1, 2, 4, 8)
METHODS = ("counterfactual", "occlusion")


def timed_map(explainer: Explainer, name: str, images_per_pass: int, x, weights) -> tuple[np.ndarray, dict]:
    """The map of ``name`` over crops ``x`` and what the process spent on it."""
    method = explainer.attribution_method(name, images_per_pass=images_per_pass)
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = method.compute(explainer.model, x, weights).numpy()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    system = after.ru_stime - before.ru_stime
    return out, {"wall": wall, "cpu": after.ru_utime - before.ru_utime + system, "system": system,
                 "faults": after.ru_minflt - before.ru_minflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--old", default="64,16", help="windows per image and pass before, per method")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    old = dict(zip(METHODS, map(int, args.old.split(","))))
    explainer = Explainer()
    files = list(iter_image_files([args.folder]))[:max(BATCHES)]
    crops = [explainer.prepare(f).aligned.crop for f in files]
    print("| map | crops | images per pass | wall s | CPU s (system) | minor faults | max abs difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for _ in range(args.repeats):
        for b in BATCHES:
            x = crops_to_tensor(crops[:b], explainer.device)
            weights = explainer.weights(x, explainer.quality(x)[0])
            for name in METHODS:
                (a, ta), (n, tn) = (timed_map(explainer, name, per_pass, x, weights)
                                    for per_pass in (old[name] * b, IMAGES_PER_PASS))
                diff = float(np.abs(n - a).max())
                for per_pass, t, d in ((old[name] * b, ta, ""), (IMAGES_PER_PASS, tn, f"{diff:.1e}")):
                    print(f"| {name} | {b} | {per_pass} | {t['wall']:.2f} | {t['cpu']:.2f} ({t['system']:.2f}) | "
                          f"{t['faults']} | {d} |", flush=True)


if __name__ == "__main__":
    main()
