"""Build the error-versus-discard dataset of docs/results/erc.md from the London photos: per identity, the *smiling*
photo as the reference and the *neutral* one as probes, clean and degraded at random kinds and strengths
(``plqa_nb.evaluation.pairs.build_probe_dataset``: blur, motion blur, JPEG, noise, pixelation, down-scaling,
salt and pepper, gamma, contrast loss, an occluding disc; mild or strong), all seeded.

    python research/make_probe_dataset.py ../shared/faces/london results/london_probes
    plqa evaluate erc results/london_probes --quality utility ers serfiq --out results/erc_london

Nothing here was used to fit anything: the neutral photos are the held-out set of the shipped defaults, and
the photo-level degradations (``degradations.PHOTO_PROTOCOL``) are not the crop-level protocol of the calibration
(``degradations.DEV_PROTOCOL``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from plqa_nb.evaluation.pairs import build_probe_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("london", type=Path, help="the London set (with neutral/ and smiling/)")
    ap.add_argument("out", type=Path, help="dataset folder to write (one subfolder per identity)")
    ap.add_argument("--probes", type=int, default=5, help="degraded probes per identity (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ids = sorted(p.stem for p in (args.london / "neutral").glob("*.jpg") if (args.london / "smiling" / p.name).exists())
    rows = build_probe_dataset([(i, args.london / "smiling" / f"{i}.jpg", args.london / "neutral" / f"{i}.jpg")
                                for i in ids], args.out, seed=args.seed, probes=args.probes, clean_probe=True)
    print(f"{len(ids)} identities, {len(rows)} probes → {args.out}")


if __name__ == "__main__":
    main()
