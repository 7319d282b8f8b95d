"""The paper's three validations on a folder of compliant photos, as one table of shares.

    python research/paper_checks.py ../shared/faces/london/neutral [--limit N] [--quality ers] [--json out.json]

* masking: Δ_Q̂ > 0 and Δ_p > 0 per square size (Eqs. 7-8);
* ICAO occlusions: Δ_Q̂ > 0, and the occluded region found as the lowest-PLQ region
  (``worst_region``), as the region whose share of the map fell most (``degraded_region``) or as the region
  that stands out against compliant faces (``flagged_region``); the compliant references with nothing flagged;
* inpainting the synthetic occlusions with the mask the explanation gives (``--mask-from`` plq: the defect
  map's, and paper: the paper's low-PLQ rule) and, for comparison, the exact occluder, with the default
  fill: Q̂ up / down beyond one std over the repeats, and the share of empty masks.

Every step is seeded (``--seed``); the photos' order does not matter. Each line is also a `plqa` verb
(docs/cli.md lists them): this script only runs the same experiment functions on one folder at once.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from plqa_nb.detection import DEFAULT_DETECTOR, DETECTORS
from plqa_nb.experiments import icao, inpainting, masking
from plqa_nb.experiments.common import FaceCrop, table
from plqa_nb.pipeline import Explainer
from plqa_nb.stages import aligned_faces

def prepare(explainer: Explainer, folder: Path, limit: int | None) -> list[FaceCrop]:
    return aligned_faces(folder, explainer.prepare, limit)


def masking_checks(explainer: Explainer, faces: list[FaceCrop], per_size: int) -> list[dict]:
    rows = table(masking.run(explainer, faces, per_size=per_size))
    return [{"check": f"masking s={r['size']:g}: quality_lost > 0 / plq_lost > 0", "n": r["n"],
             "value": f"{100 * r['quality_lost_pos']:.1f} % / {100 * r['plq_lost_pos']:.1f} %"}
            for r in masking.summary(rows)]


def icao_checks(explainer: Explainer, faces: list[FaceCrop]) -> list[dict]:
    rows = table(icao.run(explainer, faces, only="occlusion"))
    out = []
    for r in icao.summary(rows):
        if r["violation"] == "reference":
            out.append({"check": "ICAO compliant references: nothing flagged", "n": r["n"],
                        "value": f"{100 * r['flagged_empty']:.1f} %"})
            continue
        out.append({"check": f"ICAO {r['violation']}: quality_lost > 0 / worst = affected / degraded = affected / "
                             "flagged = affected", "n": r["n"],
                    "value": " / ".join(f"{100 * r[k]:.1f} %" for k in ("quality_lost_pos", "worst_is_affected",
                                                                         "degraded_is_affected",
                                                                         "flagged_is_affected"))})
    return out


def inpainting_checks(explainer: Explainer, faces: list[FaceCrop], repeats: int, mask_froms: list[str]) -> list[dict]:
    out = []
    for mask_from in mask_froms:
        s = inpainting.summary(table(inpainting.run_occluded(explainer, faces, "occlusion", mask_from,
                                                              repeats=repeats)))
        out.append({"check": f"inpainting occlusions, --mask-from {mask_from}, {inpainting.DEFAULT_FILL} fill: Q̂ up / "
                             "down beyond one std / mask empty", "n": s["n"],
                    "value": f"{100 * s['up']:.1f} % / {100 * s['down']:.1f} % / {100 * s['empty']:.1f} %"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="compliant face photos")
    ap.add_argument("--limit", type=int, default=None, help="first N photos (sorted by name)")
    ap.add_argument("--backbone", default="dlib-resnet")
    ap.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS)
    ap.add_argument("--quality", default=None, help="estimator (default: the backbone's)")
    ap.add_argument("--calibration", default=None, help="calibration JSON")
    ap.add_argument("--norm", default=None, choices=("signed", "l1"),
                    help="Eq. 3 denominator (default: the backbone's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-size", type=int, default=1, help="squares per size and face")
    ap.add_argument("--repeats", type=int, default=3, help="quality estimates per inpainting image")
    ap.add_argument("--skip", nargs="*", default=(), choices=("masking", "icao", "inpainting"))
    ap.add_argument("--mask-from", nargs="+", default=list(inpainting.MASK_SOURCES), choices=inpainting.MASK_SOURCES,
                    help="the inpainting masks to compare (plq: the explanation's, the timed line of the results)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    explainer = Explainer(args.backbone, quality=args.quality, calibration=args.calibration, seed=args.seed,
                          norm=args.norm, detector=args.detector)
    t0 = time.perf_counter()
    faces = prepare(explainer, args.folder, args.limit)
    seconds = {"prepare": round(time.perf_counter() - t0, 1)}
    print(f"{len(faces)} faces, {explainer.backbone.name} + {explainer.estimator.name}, norm {explainer.norm}, "
          f"seed {args.seed}")
    rows = []
    for name, fn in (("masking", lambda: masking_checks(explainer, faces, args.per_size)),
                     ("icao", lambda: icao_checks(explainer, faces)),
                     ("inpainting", lambda: inpainting_checks(explainer, faces, args.repeats, args.mask_from))):
        if name in args.skip:
            continue
        t_section = time.perf_counter()
        for row in fn():
            rows.append(row)
            print(f"| {row['check']} | {row['n']} | {row['value']} |", flush=True)
        seconds[name] = round(time.perf_counter() - t_section, 1)
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s (photos decoded, detected and aligned: {seconds['prepare']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"faces": len(faces), "backbone": explainer.backbone.name,
                                         "quality": explainer.estimator.name, "norm": explainer.norm,
                                         "seed": args.seed, "seconds": seconds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
