"""Check SFace (``--backbone sface``) as a face recogniser through our own detection and alignment.

London neutral photo of each identity against its smiling photo (one genuine pair per identity, every other
pairing an impostor): MTCNN (largest face) → similarity to ArcFace's 112-px template → SFace → cosine similarity.
Prints ROC AUC, EER, the threshold at FMR 1e-3, the genuine and impostor medians, and the time taken.

Usage: python research/sface_verification.py [--faces DIR] [--identities N]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from plqa_nb.backbones import load_backbone
from plqa_nb.backbones.base import crops_to_tensor
from plqa_nb.evaluation.erc import threshold_at_fmr
from plqa_nb.stages import prepare_face
from plqa_nb.verification import equal_error_rate, pair_scores, roc_auc


def embed(paths: list[Path], backbone) -> np.ndarray:
    """L2-normalised embeddings [N, D] of the largest face of each photo."""
    crops = [prepare_face(p, backbone).aligned.crop for p in paths]
    with torch.no_grad():
        return backbone(crops_to_tensor(crops)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[1]
    default_faces = Path(os.environ.get("PLQA_FACES") or repo.parent / "shared" / "faces")
    parser.add_argument("--faces", type=Path, default=default_faces, help="folder with london/neutral, london/smiling")
    parser.add_argument("--identities", type=int, default=0, help="the first N identities (0: all)")
    args = parser.parse_args()
    names = sorted(p.name for p in (args.faces / "london" / "smiling").glob("*.jpg"))
    names = names[: args.identities or None]
    start = time.perf_counter()
    backbone = load_backbone("sface")
    loaded = time.perf_counter()
    neutral = embed([args.faces / "london" / "neutral" / n for n in names], backbone)
    smiling = embed([args.faces / "london" / "smiling" / n for n in names], backbone)
    done = time.perf_counter()
    genuine, impostor = pair_scores(neutral, smiling)
    print(f"SFace, London neutral vs smiling: {len(genuine)} identities, {len(genuine)} genuine and "
          f"{len(impostor)} impostor pairs")
    print(f"ROC AUC {roc_auc(genuine, impostor):.4f}, EER {equal_error_rate(genuine, impostor):.4f}, "
          f"threshold at FMR 1e-3 {threshold_at_fmr(impostor, 1e-3):.3f} (cosine)")
    print(f"genuine median {np.median(genuine):.3f} (min {genuine.min():.3f}), impostor median "
          f"{np.median(impostor):.3f} (max {impostor.max():.3f})")
    print(f"time: backbone {loaded - start:.1f} s, {2 * len(names)} photos detected, aligned and embedded "
          f"{done - loaded:.1f} s")


if __name__ == "__main__":
    main()
