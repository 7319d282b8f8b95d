"""The README's first picture: `plqa explain` on a compliant photo and on a degraded copy of it, side by side.

    python scripts/render_readme_explain.py ../shared/faces/london/neutral/001.jpg \
        --reference ../shared/faces/london/smiling/001.jpg

Runs the verb itself (default model) into a temporary folder and stacks the two PNGs it writes (aligned crop
and PLQ map, Q̂ printed on them) into docs/figures/explain.png; prints the rows of results.csv, whose values
docs/results/quality.md quotes. The degraded copy is the photo with a strong Gaussian blur and JPEG compression
(``--blur``, ``--jpeg``), made here and not part of any fit. With ``--reference`` (another photo of the same
person) it also prints each panel's cosine similarity to it, the genuine score a match would be decided on.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np

from plqa_nb import degradations as dg
from plqa_nb import explain
from plqa_nb.batch import atomic_save_png
from plqa_nb.cli import main as plqa
from plqa_nb.images import load_image

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "explain.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", type=Path, help="a compliant photo")
    ap.add_argument("--blur", type=float, default=10.0, help="Gaussian blur σ in px of a 600-px photo (default 10)")
    ap.add_argument("--jpeg", type=int, default=5, help="JPEG quality of the degraded copy (default 5)")
    ap.add_argument("--reference", type=Path, default=None, help="another photo of the same person")
    args = ap.parse_args()
    reference = None if args.reference is None else np.asarray(explain(args.reference).embedding, np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        photo = load_image(args.photo)
        scale = max(photo.shape[:2]) / 600
        atomic_save_png(src / f"1_compliant_{args.photo.stem}.png", photo)
        atomic_save_png(src / f"2_degraded_{args.photo.stem}.png",
                        dg.jpeg(dg.gaussian_blur(photo, args.blur * scale), args.jpeg))
        out = Path(tmp) / "out"
        assert plqa(["explain", str(src), "--out", str(out)]) == 0
        with open(out / "results.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["file"])
        panels = [load_image(out / r["output"].replace(".npz", ".png")) for r in rows]
        for r in rows:
            line = f"{Path(r['file']).name}: quality {r['quality']} (raw {r['quality_raw']}, {r['quality_method']})"
            if reference is not None:
                e = np.load(out / r["output"])["embedding"].astype(np.float64)
                line += f", cosine to the reference {e @ reference / np.linalg.norm(e) / np.linalg.norm(reference):.4f}"
            print(line)
    gap = np.full((panels[0].shape[0], 12, 3), 255, np.uint8)
    atomic_save_png(OUT, np.concatenate([panels[0], gap, panels[1]], axis=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
