"""Where sample faces come from: ``PLQA_FACES`` or ``../shared/faces``, else skimage's astronaut."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def faces_dir() -> Path | None:
    """The folder of real sample faces: $PLQA_FACES, else ../shared/faces beside the repo; None if absent."""
    env = os.environ.get("PLQA_FACES")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "faces"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def london(expression: str = "neutral", limit: int | None = None) -> list[Path]:
    """London set photos (``neutral`` or ``smiling``), sorted by identity; [] if the set is absent."""
    root = faces_dir()
    if root is None:
        return []
    files = sorted((root / "london" / expression).glob("*.jpg"))
    return files[:limit] if limit else files


def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut photo (Eileen Collins, NASA), uint8 RGB [512, 512, 3]."""
    from skimage import data

    return data.astronaut()


def sample_images() -> dict[str, Path | np.ndarray]:
    """Named sample photos for pickers: the shared faces if present, always the astronaut."""
    samples: dict[str, Path | np.ndarray] = {"astronaut (skimage)": astronaut()}
    root = faces_dir()
    if root is not None:
        for p in sorted((root / "public_domain").glob("*.*")) + sorted((root / "cc0").glob("*.jpg")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                samples[p.stem] = p
        for p in london("neutral", 10) + london("smiling", 4):
            samples[f"london {p.parent.name} {p.stem}"] = p
    return samples
