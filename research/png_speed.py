"""The PNG that `plqa explain` writes per face: ``images.encode_png`` against OpenCV's libpng at its fastest setting.

    python research/png_speed.py ../shared/faces/london/neutral --limit 20

Explains the first ``--limit`` photos once, then encodes each side-by-side picture (``figures.side_by_side_png``)
``--repeats`` times with each encoder, on one thread, and prints a markdown table: the median milliseconds per
picture, the mean size in KiB, and whether every picture decodes (OpenCV) to its exact pixels.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from plqa_nb.figures import side_by_side_png
from plqa_nb.images import encode_png
from plqa_nb.pipeline import Explainer


def opencv_png(rgb: np.ndarray) -> bytes:
    """libpng through OpenCV: zlib level 1 without row filters, the writer before ``encode_png``."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return enc.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    explainer = Explainer()
    pictures = []
    for path in sorted(args.folder.glob("*.jpg"))[:args.limit]:
        r = explainer.explain(path)
        pictures.append(side_by_side_png(r.crop, r.plq, r.quality))
    print(f"{len(pictures)} side-by-side pictures of {pictures[0].shape[1]}×{pictures[0].shape[0]} px\n")
    print("| encoder | ms per picture (median) | KiB (mean) | pixels exact |")
    print("|---|---:|---:|---|")
    for name, encode in (("OpenCV (libpng, zlib level 1, no filter)", opencv_png),
                         ("`images.encode_png` (ISA-L level 2, Sub filter)", encode_png)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            encoded = [encode(p) for p in pictures]
            times.append((time.perf_counter() - t0) / len(pictures))
        exact = all(np.array_equal(cv2.imdecode(np.frombuffer(e, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], p)
                    for e, p in zip(encoded, pictures))
        kib = statistics.mean(len(e) for e in encoded) / 1024
        print(f"| {name} | {statistics.median(times) * 1000:.2f} | {kib:.0f} | {'yes' if exact else 'NO'} |")


if __name__ == "__main__":
    main()
