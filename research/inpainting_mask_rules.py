"""The inpainting shares under several mask rules, on the ICAO generator's occlusion variants drawn on the crop.

    python research/inpainting_mask_rules.py ../shared/faces/london/smiling --backbone sface [--limit 21]
        [--rules RULE ...]

Rules (default: all of them, the widenings compared): ``counterfactual`` (``inpainting.defect_mask`` of the
counterfactual map alone), ``region:PX`` (the region the deviation map flags, widened by PX px on the 112-px scale:
``inpainting.flag_mask``) and ``explanation[:PX]`` (the rule of ``--mask-from plq``, ``inpainting.explanation_mask``,
its flagged region widened by PX px); ``occluder``, not a rule but the bound it is judged against: every pixel the
occluder was painted on (its mask, widened by the paint's soft edge). Mean-face fill, one repeat, seed 0; per rule
and occluder the shares of variants whose raw quality rose / fell and whose mask was empty. Run it on development
photos: the rule and its widening were chosen there (docs/results/analyses.md, the sface section).
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


class Masks:
    """The masks [S, S] of each rule for the occluded faces (``occluders``: their painted occluders' masks); the
    deviation and counterfactual maps are computed once, when a rule first needs them."""

    def __init__(self, explainer: Explainer, faces: list[common.FaceCrop], occluders: list[np.ndarray]):
        self.explainer, self.faces, self.occluders = explainer, faces, occluders
        self.norm = explainer.compliant_norm().features
        self._deviations: list[np.ndarray] | None = None
        self._defects: list[np.ndarray] | None = None

    @property
    def deviations(self) -> list[np.ndarray]:
        if self._deviations is None:
            self._deviations = common.deviation_maps(self.explainer, [f.crop for f in self.faces])
        return self._deviations

    @property
    def defects(self) -> list[np.ndarray]:
        if self._defects is None:
            self._defects = common.counterfactual_maps(self.explainer, [f.crop for f in self.faces])
        return self._defects

    def of(self, rule: str) -> list[np.ndarray]:
        name, _, px = rule.partition(":")
        widen = float(px) if px else inpainting.FLAG_DILATE
        if name == "occluder":
            return [dg.soft_alpha(o) >= 1 / 255 for o in self.occluders]
        if name == "region":
            return [inpainting.flag_mask(d, f.landmarks, self.norm, widen) for d, f in zip(self.deviations, self.faces)]
        if name == "counterfactual":
            return [inpainting.defect_mask(c, f.landmarks) for c, f in zip(self.defects, self.faces)]
        if name == "explanation":
            return [inpainting.explanation_mask(c, d, f.landmarks, self.norm, widen)
                    for c, d, f in zip(self.defects, self.deviations, self.faces)]
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
    ap.add_argument("--rules", nargs="+", default=["counterfactual", "region:4", "explanation:2", "explanation:3",
                                                   "explanation:4", "explanation:6", "explanation:10", "occluder"])
    args = ap.parse_args()
    explainer = Explainer(args.backbone, seed=0)
    faces = aligned_faces(args.folder, explainer.prepare, args.limit)
    drawn = [(f, v) for f in faces for v in icao.make_variants(f, "occlusion", 0)]
    variants = [(v.name, common.FaceCrop(f"{f.name}:{v.name}", v.image, v.landmarks)) for f, v in drawn]
    occluded = [face for _, face in variants]
    print(f"{len(faces)} faces, {len(occluded)} occlusion variants, {args.backbone}")
    rules = Masks(explainer, occluded, [v.occluder for _, v in drawn])
    for rule in args.rules:
        t0 = time.perf_counter()  # the first rule that needs a map pays for it
        masks = rules.of(rule)
        rows = common.table(inpainting.run(explainer, occluded, masks, "mean-face", repeats=1, mask_from=rule))
        print(f"{rule:15s} all            {shares(rows)}  ({time.perf_counter() - t0:.0f} s)")
        for name in dict.fromkeys(n for n, _ in variants):
            print(f"{'':15s} {name:14s} {shares([r for (n, _), r in zip(variants, rows) if n == name])}")


if __name__ == "__main__":
    main()
