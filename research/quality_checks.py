"""Does Q̂ read as recognition utility? The floors of the quality issue, measured on held-out photos.

    python research/quality_checks.py ../shared/faces [--estimators utility ers serfiq] [--json out.json]

For each estimator (with the shipped utility calibration of dlib-resnet):

* compliant photos: the share with Q̂ ≥ 0.5, on the London *neutral* photos (the shipped defaults were fitted on
  the smiling ones) and on the public-domain and CC0 portraits;
* per degradation kind of a held-out, crop-level protocol (other kinds and strengths than the calibration's,
  ``plqa_nb.degradations.HELD_OUT_PROTOCOL``), the median Q̂ of the neutral faces at each strength, whether it
  falls as the strength grows, and the share of faces whose Q̂ the mildest strength lowers;
* random black squares of 50 px (112-px scale): the share of faces whose Q̂ drops (``experiments.masking``);
* the four synthetic occluders: the share whose Q̂ drops (``experiments.icao``).

The error-versus-discard figures (ERC, ECE) come from ``plqa evaluate erc`` on the dataset of
``research/make_probe_dataset.py``. Every step is seeded; about 3 minutes on 2 CPU cores without FaceQAN.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from plqa_nb import degradations as dg
from plqa_nb.backbones.base import crops_to_tensor
from plqa_nb.detection import DEFAULT_DETECTOR, DETECTORS
from plqa_nb.experiments import icao, masking, table
from plqa_nb.pipeline import Explainer
from plqa_nb.stages import FaceCrop, aligned_faces


def faces_of(explainer: Explainer, folder: Path) -> list[FaceCrop]:
    return aligned_faces(folder, explainer.prepare, on_skip=lambda msg: print(f"skipped {msg}"))


def qualities(explainer: Explainer, images: list[np.ndarray], batch: int = 32,
              raw: bool = False) -> np.ndarray:
    """Q̂ (or, with ``raw``, the estimator's raw Q) of aligned crops [N]."""
    return np.concatenate([explainer.quality(crops_to_tensor(images[k:k + batch], explainer.device))[int(raw)]
                           .cpu().numpy() for k in range(0, len(images), batch)])


def check(backbone: str, estimator: str, neutral: list[FaceCrop], others: list[FaceCrop], seed: int) -> dict:
    ex = Explainer(backbone, quality=estimator, seed=seed)
    q_clean = qualities(ex, [f.crop for f in neutral])
    raw_clean = qualities(ex, [f.crop for f in neutral], raw=True)
    q_other = qualities(ex, [f.crop for f in others]) if others else np.array([])
    kinds = {}
    for kind, entry in dg.HELD_OUT_PROTOCOL.entries.items():
        images = [[dg.HELD_OUT_PROTOCOL.apply(f.crop, kind, s, dg.face_rng(seed, f.name, f"held-out {kind} {s}"))
                   for f in neutral] for s in entry.values]
        per_strength = [qualities(ex, imgs) for imgs in images]
        raw = [qualities(ex, imgs, raw=True) for imgs in images]
        medians = [float(np.median(q)) for q in [q_clean] + per_strength]
        raw_medians = [float(np.median(q)) for q in [raw_clean] + raw]
        kinds[kind] = {"medians": medians, "falls": bool(np.all(np.diff(medians) < 0)),
                       "raw_medians": raw_medians, "raw_falls": bool(np.all(np.diff(raw_medians) < 0)),
                       "mildest_lowers": float(np.mean(per_strength[0] < q_clean)),
                       "mildest_lowers_raw": float(np.mean(raw[0] < raw_clean))}
    squares = table(masking.run(ex, neutral, sizes=(50,), seed=seed))
    occl = [r for r in table(icao.run(ex, neutral, only="occlusion", seed=seed)) if r["violation"] != "reference"]
    return {"estimator": estimator, "alpha": ex.config.alpha, "r": ex.config.r,
            "compliant_neutral": float(np.mean(q_clean >= 0.5)), "compliant_neutral_median": float(np.median(q_clean)),
            "compliant_other": float(np.mean(q_other >= 0.5)) if len(q_other) else float("nan"),
            "other_photos": len(q_other), "kinds": kinds,
            "kinds_falling": sum(k["falls"] for k in kinds.values()), "kinds_total": len(kinds),
            "kinds_falling_raw": sum(k["raw_falls"] for k in kinds.values()),
            "square50_drops": float(np.mean([r["quality_lost"] > 0 for r in squares])),
            "occluders_drop": {v: float(np.mean([r["quality_lost"] > 0 for r in occl if r["violation"] == v]))
                               for v in dict.fromkeys(r["violation"] for r in occl)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("faces", type=Path, help="the shared faces folder (london/neutral, public_domain, cc0)")
    ap.add_argument("--backbone", default="dlib-resnet")
    ap.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS)
    ap.add_argument("--estimators", nargs="+", default=["utility", "ers", "serfiq"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    prep = Explainer(args.backbone, detector=args.detector)
    t0 = time.perf_counter()
    neutral = faces_of(prep, args.faces / "london" / "neutral")
    others = faces_of(prep, args.faces / "public_domain") + faces_of(prep, args.faces / "cc0")
    results = []
    for name in args.estimators:
        r = check(args.backbone, name, neutral, others, args.seed)
        results.append(r)
        print(f"\n{name} (α {r['alpha']:.4g}, r {r['r']:.4g}): Q̂ ≥ 0.5 for {r['compliant_neutral']:.0%} of "
              f"{len(neutral)} London neutral (median {r['compliant_neutral_median']:.3f}) and "
              f"{r['compliant_other']:.0%} of {r['other_photos']} other portraits; 50-px square lowers Q̂ in "
              f"{r['square50_drops']:.0%}; occluders {', '.join(f'{k} {v:.0%}' for k, v in r['occluders_drop'].items())}")
        for kind, k in r["kinds"].items():
            medians = " → ".join(f"{m:.5f}" for m in k["medians"])
            print(f"  {kind:16s} median Q̂ {medians}  {'falls' if k['falls'] else 'DOES NOT FALL'} "
                  f"(raw Q: {'falls' if k['raw_falls'] else 'does not fall'}); the mildest strength lowers Q̂ for "
                  f"{k['mildest_lowers']:.0%} of the faces (raw Q: {k['mildest_lowers_raw']:.0%})")
        print(f"  kinds whose median falls with strength: {r['kinds_falling']} of {r['kinds_total']} "
              f"(raw Q: {r['kinds_falling_raw']})")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
