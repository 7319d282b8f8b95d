"""Shared fixtures. Missing optional resources skip a test, except on CI (``CI=true``), where
they fail it: CI must run everything."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn to files; the package itself chooses no backend

REPO = Path(__file__).resolve().parents[1]


def skip_or_fail(reason: str) -> None:
    """``pytest.skip`` locally, ``pytest.fail`` when the environment variable CI is true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required on CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The real-photo folder: ``$PLQA_FACES`` or ``<repo>/../shared/faces``."""
    path = Path(os.environ.get("PLQA_FACES") or REPO.parent / "shared" / "faces")
    if not (path / "london" / "neutral").is_dir():
        skip_or_fail(f"faces folder not found: {path} (set PLQA_FACES)")
    return path


@pytest.fixture(scope="session")
def dlib_module():
    """dlib (PyPI ``dlib-bin``), dlib's own implementation used as the reference."""
    try:
        import dlib
    except ImportError:
        skip_or_fail("dlib is not installed (pip install dlib-bin)")
    return dlib


@pytest.fixture(scope="session")
def london_faces(faces_dir):
    """(name, aligned dlib-resnet crop uint8 [150,150,3]) of the first 12 London neutral photos, prepared once."""
    from plqa_nb.pipeline import Explainer

    ex = Explainer("dlib-resnet")
    return [(f"{i:03d}.jpg", ex.prepare(faces_dir / "london" / "neutral" / f"{i:03d}.jpg").aligned.crop)
            for i in range(1, 13)]


@pytest.fixture(scope="session")
def london_crops(london_faces):
    """The aligned crops of the first 6 London neutral photos."""
    return [crop for _, crop in london_faces[:6]]


@pytest.fixture(scope="session")
def declaring():
    """Factory ``(fmt, width, height) -> bytes``: a tiny valid "PNG" or "JPEG" (40×40 pixels of data) whose
    header declares width × height; PIL opens it and reports that size."""
    def make(fmt: str, width: int, height: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buf, fmt)
        data = bytearray(buf.getvalue())
        if fmt == "PNG":  # IHDR follows the 8-byte signature, its length and its type; fix its CRC
            data[16:24] = struct.pack(">II", width, height)
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        else:  # baseline SOF0: marker, length (2), precision (1), height, width
            sof = data.index(b"\xff\xc0")
            data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
        return bytes(data)
    return make
