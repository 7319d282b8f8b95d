"""The inpainting shares under several mask rules, on the ICAO generator's occlusion variants drawn on the crop.

    python research/inpainting_mask_rules.py ../shared/faces/london/smiling --backbone sface [--limit 21]
        [--rules counterfactual region:6 region:10 region:14 explanation occluder]

Rules: ``counterfactual`` (``inpainting.defect_mask`` of the counterfactual map alone), ``region:PX`` (the region the
deviation map flags, widened by PX px on the 112-px scale: ``inpainting.flag_mask``) and ``explanation`` (the
rule of ``--mask-from plq``: ``inpainting.explanation_mask``); ``occluder``, not a rule but the bound it is
judged against: every pixel the occluder was painted on (its mask, widened by the paint's soft edge). Mean-face
fill, one repeat, seed 0; per rule and occluder the shares of variants whose raw quality rose / fell and whose
mask was empty. Run it on development photos: the rule and its widening were chosen there (docs/results/analyses.md,
the sface section).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from plqa_nb import degradations as dg
from plqa_nb.experiments import common, icao, inpainting
from plqa_nb.pipeline import Explainer
from plqa_nb.stages import aligned_faces


def masks_of(rule: str, explainer: Explainer, faces: list[common.FaceCrop],
             occluders: list[np.ndarray]) -> list[np.ndarray]:
    """The masks [S, S] of ``rule`` for the occluded faces (``occluders``: their painted occluders' masks)."""
    if rule == "occluder":
        return [dg.soft_alpha(o) >= 1 / 255 for o in occluders]
    images = [f.crop for f in faces]
    norm = explainer.compliant_norm().features
    deviations = common.deviation_maps(explainer, images)
    if rule.startswith("region:"):
        widen = float(rule.split(":")[1])
        return [inpainting.flag_mask(d, f.landmarks, norm, widen) for d, f in zip(deviations, faces)]
    defects = common.counterfactual_maps(explainer, images)
    if rule == "counterfactual":
        return [inpainting.defect_mask(c, f.landmarks) for c, f in zip(defects, faces)]
    if rule == "explanation":
        return [inpainting.explanation_mask(c, d, f.landmarks, norm) for c, d, f in zip(defects, deviations, faces)]
    raise SystemExit(f"unknown rule {rule!r}")


def shares(rows: list[dict]) -> str:
    gain = np.array([float(r["quality_raw_after"]) - float(r["quality_raw_before"]) for r in rows])
    empty = np.array([float(r["masked_fraction"]) == 0 for r in rows])
    return (f"n {len(rows):3d}  raw Q up {100 * np.mean(gain > 0):5.1f} %  down {100 * np.mean(gain < 0):5.1f} %  "
            f"empty {100 * np.mean(empty):5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--backbone", default="dlib-resnet")
    ap.add_argument("--limit", type=int, default=21)
    ap.add_argument("--rules", nargs="+", default=["counterfactual", "region:6", "region:10", "region:14",
                                                   "explanation"])
    args = ap.parse_args()
    explainer = Explainer(args.backbone, seed=0)
    faces = aligned_faces(args.folder, explainer.prepare, args.limit)
    drawn = [(f, v) for f in faces for v in icao.make_variants(f, "occlusion", 0)]
    variants = [(v.name, common.FaceCrop(f"{f.name}:{v.name}", v.image, v.landmarks)) for f, v in drawn]
    occluded = [face for _, face in variants]
    print(f"{len(faces)} faces, {len(occluded)} occlusion variants, {args.backbone}")
    for rule in args.rules:
        t0 = time.perf_counter()
        masks = masks_of(rule, explainer, occluded, [v.occluder for _, v in drawn])
        rows = common.table(inpainting.run(explainer, occluded, masks, "mean-face", repeats=1, mask_from=rule))
        print(f"{rule:15s} all            {shares(rows)}  ({time.perf_counter() - t0:.0f} s)")
        for name in dict.fromkeys(n for n, _ in variants):
            print(f"{'':15s} {name:14s} {shares([r for (n, _), r in zip(variants, rows) if n == name])}")


if __name__ == "__main__":
    main()
