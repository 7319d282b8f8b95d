"""The face detectors against MTCNN: who finds the faces, how far apart their landmarks are, what that does to Q̂.

1. On the London photos (``FACES/london/{neutral,smiling}``): the share of photos each detector finds a face
   in, the distance of each other detector's five landmarks from MTCNN's in MTCNN's inter-ocular distances
   (median, 95th percentile, per landmark too), and how far Q̂ of each shipped network's default model (its
   bundle, fitted on MTCNN's crops) and its logit move between its crops and MTCNN's, against how far they move
   when the photo is shifted by one pixel.
   Then how well each detector's crops let genuine pairs match (neutral against smiling, same person): the
   mean and 5th percentile of their cosine on dlib-resnet and SFace, for each detector and for YuNet in one pass
   over the whole photo at its size (what it did before its two passes), with the detection's ms per photo on
   one core (one OpenCV and one torch thread); and how far each detector's eye centres are from the pupils hand-
   placed on the photos that have a ``.landmarks.csv`` (the London neutral ones: points 0 and 1 of the webmorph
   template), in those pupils' inter-ocular distances.
2. With ``--occlusion DIR`` (written by ``plqa experiment icao PHOTOS --only occlusion --save-images --out DIR``):
   how many of the occluded variants (DIR/images/<photo>/<violation>.png) each detector finds a face in, per
   occluder kind (and in the clean crops, reference.png), and how far its landmarks move from those it places
   on the clean crop. With ``--enlarge K`` each variant is first enlarged K
   times (bicubic), so that the detectors see the face as in a photo: YuNet's two passes run only on an image
   larger than its first pass (``yunet.COARSE_SIDE``), which a saved crop is not.

    python research/detector_agreement.py [--faces ../shared/faces] [--occlusion DIR [--enlarge K] [--skip-london]]
                                           [--limit N]
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from plqa_nb.detection import DETECTORS, detect_faces
from plqa_nb.errors import NoFaceError
from plqa_nb.images import IMAGE_SUFFIXES, load_image
from plqa_nb.pipeline import Explainer

BACKBONES = ("dlib-resnet", "sface")  # the shipped networks
SUMMARY = (np.median, lambda x: np.percentile(x, 95), np.max)
LANDMARKS = ("left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner")
REPO = Path(__file__).resolve().parents[1]


def london_photos(faces: Path, limit: int | None) -> list[Path]:
    """The London photos of both sessions; with ``limit``, those of the first ``limit`` people (by file name), so
    that a quick look still has genuine pairs."""
    photos = sorted(p for session in ("neutral", "smiling") for p in (faces / "london" / session).iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        people = set(sorted({p.name for p in photos})[:limit])
        photos = [p for p in photos if p.name in people]
    return photos


def qualities(detector: str, photos: list[Path], backbone: str, shift: int = 0, batch: int = 8
              ) -> dict[Path, np.ndarray]:
    """Per photo whose face ``detector`` finds: Q̂ of ``backbone``'s default model (its shipped bundle) and α Q, the
    logit of Q̂ up to a constant (Eq. 2), which does not flatten where Q̂ nears 1. ``shift``: the photo without its
    first ``shift`` rows and columns."""
    explainer = Explainer(backbone, detector=detector)
    prepared = {}
    for photo in photos:
        try:
            prepared[photo] = explainer.prepare(np.ascontiguousarray(load_image(photo)[shift:, shift:]))
        except NoFaceError:
            pass
    found = list(prepared)
    out = {}
    for i in range(0, len(found), batch):
        chunk = found[i:i + batch]
        for photo, r in zip(chunk, explainer.explain_prepared([prepared[p] for p in chunk], keep_photo=False)):
            out[photo] = np.array([r.quality, explainer.config.alpha * r.quality_raw])
    return out


def agreement(photos: list[Path]) -> None:
    found = {d: {} for d in DETECTORS}
    for photo in photos:
        rgb = load_image(photo)
        for d in DETECTORS:
            try:
                found[d][photo] = detect_faces(rgb, str(photo), detector=d)
            except NoFaceError:
                pass
    n = len(photos)
    for d in DETECTORS:
        print(f"{d}: face found in {len(found[d])} of {n} photos ({len(found[d]) / n:.1%})")
    q = {(d, net, shift): qualities(d, [p for p in photos if p in found[d]], net, shift)
         for d in DETECTORS for net in BACKBONES for shift in (0, 1)}
    print("how far the logit of Q̂ moves when the photo loses its first row and column (a shift of one pixel), per "
          "network's default model, median / 95th percentile / max:")
    for d in DETECTORS:
        for net in BACKBONES:
            common = [p for p in q[d, net, 0] if p in q[d, net, 1]]
            delta = np.abs(np.array([q[d, net, 1][p][1] - q[d, net, 0][p][1] for p in common]))
            print(f"  {d:12s} {net:12s} " + " / ".join(f"{f(delta):.3f}" for f in SUMMARY))
    for d in DETECTORS[1:]:
        both = [p for p in photos if p in found["mtcnn"] and p in found[d]]
        dist = []
        for p in both:
            ref, other = found["mtcnn"][p].landmarks, found[d][p].landmarks
            iod = np.linalg.norm(ref[1] - ref[0])
            dist.append(np.linalg.norm(other - ref, axis=1) / iod)
        dist = np.asarray(dist)  # [photos, 5] in MTCNN inter-ocular distances
        print(f"landmark distance {d} - mtcnn over {len(both)} photos × 5 landmarks, in inter-ocular distances: "
              f"median {np.median(dist):.3f}, 95th percentile {np.percentile(dist, 95):.3f}, max {dist.max():.3f}")
        for k, name in enumerate(LANDMARKS):
            print(f"  {name:19s} median {np.median(dist[:, k]):.3f}  "
                  f"95th percentile {np.percentile(dist[:, k], 95):.3f}")
        worst = np.argsort(-dist.max(1))[:3]
        print("  largest: " + ", ".join(f"{both[i].parent.name}/{both[i].name} {dist[i].max():.2f}" for i in worst))
        for net in BACKBONES:
            common = [p for p in both if p in q["mtcnn", net, 0] and p in q[d, net, 0]]
            delta = np.array([q[d, net, 0][p] - q["mtcnn", net, 0][p] for p in common])  # [photos, 2]
            print(f"  {net} (its default model) against mtcnn's crops over {len(common)} photos, median / 95th "
                  f"percentile / max: |ΔQ̂| " + " / ".join(f"{f(abs(delta[:, 0])):.4f}" for f in SUMMARY) +
                  ", |Δ logit Q̂| " + " / ".join(f"{f(abs(delta[:, 1])):.3f}" for f in SUMMARY) +
                  f", mean Δ logit Q̂ {delta[:, 1].mean():+.3f}")


def hand_placed_pupils(photo: Path) -> np.ndarray | None:
    """The pupils [2, 2] (left, right as seen) of the webmorph template hand-placed on ``photo``, from
    ``<photo>.landmarks.csv`` (points 0 and 1), or None where the photo has no such file."""
    path = photo.with_suffix(".landmarks.csv")
    if not path.is_file():
        return None
    return np.loadtxt(path, delimiter=",", skiprows=1, max_rows=2)


def genuine_pairs_and_eyes(photos: list[Path]) -> None:
    """Per detector: the cosine of each person's neutral and smiling crops, per backbone, and the distance of the
    detector's eye centres from the hand-placed pupils (see the module)."""
    import time

    import torch

    from plqa_nb.alignment import align_face
    from plqa_nb.backbones import load_backbone
    from plqa_nb.backbones.base import crops_to_tensor
    from plqa_nb.detection import yunet

    neutral = {p.name: p for p in photos if p.parent.name == "neutral"}
    pairs = [(neutral[p.name], p) for p in photos if p.parent.name == "smiling" and p.name in neutral]
    if not pairs:
        print("genuine pairs: none among these photos (a person needs a neutral and a smiling photo)")
        return
    images = {p: load_image(p) for pair in pairs for p in pair}
    pupils = {p: q for p in images if (q := hand_placed_pupils(p)) is not None}
    networks = [load_backbone(name) for name in BACKBONES]
    print(f"genuine pairs (neutral against smiling, {len(pairs)} people): cosine mean / 5th percentile; eye centres "
          f"against the hand-placed pupils of {len(pupils)} photos, in their inter-ocular distances: median / 95th "
          "percentile / max")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    for label, detector, coarse in [(d, d, None) for d in DETECTORS] + [("yunet, one pass at full size", "yunet",
                                                                          10 ** 6)]:
        saved = yunet.COARSE_SIDE
        yunet.COARSE_SIDE = coarse or saved  # above the photo's side: the first pass is the only one
        try:
            t0 = time.perf_counter()
            found = {p: detect_faces(rgb, str(p), detector=detector) for p, rgb in images.items()}
            ms = (time.perf_counter() - t0) / len(images) * 1000
        finally:
            yunet.COARSE_SIDE = saved
        scores = []
        for net in networks:
            crops = {p: align_face(images[p], d, net.crop_size, net.template).crop for p, d in found.items()}
            with torch.no_grad():
                emb = {p: net(crops_to_tensor([c]))[0] for p, c in crops.items()}
            cos = np.array([float(emb[a] @ emb[b]) for a, b in pairs])
            scores.append(f"{net.name} {cos.mean():.4f} / {np.percentile(cos, 5):.4f}")
        eyes = np.array([np.linalg.norm(found[p].landmarks[:2] - q, axis=1) / np.linalg.norm(q[1] - q[0])
                         for p, q in pupils.items()])
        if len(eyes):
            scores.append(f"eyes {np.median(eyes):.3f} / {np.percentile(eyes, 95):.3f} / {eyes.max():.3f}")
        print(f"  {label:30s} {ms:5.1f} ms per photo   " + "   ".join(scores))


def occlusion(folder: Path, enlarge: int = 1) -> None:
    """Per occluder kind: the variants each detector finds a face in, and how far its landmarks move from those it
    places on the same face's clean crop (reference.png): the occluders are painted on that crop, so the face's
    true landmarks are the same in every variant."""
    variants = sorted(p for p in (folder / "images").rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not variants:
        raise SystemExit(f"{folder / 'images'}: no variants; run plqa experiment icao ... --save-images --out {folder}")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    found: dict[tuple[str, Path, str], np.ndarray] = {}  # (detector, face folder, kind): landmarks [5, 2]
    for path in variants:
        kind = path.stem
        rgb = load_image(path)
        if enlarge > 1:
            rgb = cv2.resize(rgb, None, fx=enlarge, fy=enlarge, interpolation=cv2.INTER_CUBIC)
        counts[kind]["variants"] += 1
        for d in DETECTORS:
            try:
                found[d, path.parent, kind] = detect_faces(rgb, str(path), detector=d).landmarks
                counts[kind][d] += 1
            except NoFaceError:
                pass
    size = f", enlarged {enlarge}x" if enlarge > 1 else ""
    print(f"occluded variants with a face found ({len(variants)} under {folder / 'images'}{size}); landmark drift from "
          "the clean crop's, the farthest of the five, in inter-ocular distances: median / max")
    print("kind\tvariants\t" + "\t".join(f"{d}\tdrift" for d in DETECTORS))
    for kind in sorted(counts):
        cells = []
        for d in DETECTORS:
            drift = [np.linalg.norm(lm - ref, axis=1).max() / np.linalg.norm(ref[1] - ref[0])
                     for (dd, face, k), lm in found.items()
                     if dd == d and k == kind != "reference" and (ref := found.get((d, face, "reference"))) is not None]
            cells.append(f"{counts[kind][d]}\t" + (f"{np.median(drift):.3f} / {np.max(drift):.3f}" if drift else "-"))
        print(f"{kind}\t{counts[kind]['variants']}\t" + "\t".join(cells))
    occluded = [c for kind, c in counts.items() if kind != "reference"]  # reference.png: the photo's clean crop
    n = sum(c["variants"] for c in occluded)
    total = {d: sum(c[d] for c in occluded) for d in DETECTORS}
    print(f"all occluded\t{n}\t" + "\t".join(f"{total[d]} ({total[d] / n:.1%})\t" for d in DETECTORS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, default=Path(os.environ.get("PLQA_FACES") or REPO.parent / "shared"
                                                             / "faces"), help="the real-photo folder (PLQA_FACES)")
    parser.add_argument("--occlusion", type=Path, default=None, help="output folder of plqa experiment icao "
                                                                     "--only occlusion --save-images")
    parser.add_argument("--enlarge", type=int, default=1, help="--occlusion: enlarge each variant K times first")
    parser.add_argument("--limit", type=int, default=None,
                        help="the photos of the first N London people only (a quick look)")
    parser.add_argument("--skip-london", action="store_true", help="only the occluded variants")
    args = parser.parse_args()
    if not args.skip_london:
        photos = london_photos(args.faces, args.limit)
        agreement(photos)
        genuine_pairs_and_eyes(photos)
    if args.occlusion is not None:
        occlusion(args.occlusion, args.enlarge)


if __name__ == "__main__":
    main()
