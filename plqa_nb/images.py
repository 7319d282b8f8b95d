"""Stage 0: load an image from a path, a PIL image or a numpy array (and ``encode_png``, the PNG the outputs use).

Every loader returns ``uint8`` RGB ``[H, W, 3]``: grey is replicated, alpha is
composited on white, 16-bit and float images are rescaled. Problems raise an
``InputError`` subclass that names the source.

Decompression bombs: every path refuses an image of more than ``max_pixels`` pixels
(default ``MAX_PIXELS``) before decoding it. Files are judged by the size their header
declares (``Image.open`` reads the header only), PIL images by their size before they
are loaded, arrays before any conversion.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile

from .errors import (
    CorruptImageError,
    EmptyFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidValuesError,
    NotAFileError,
    NotAnImageError,
)

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]  # bytes: an uploaded file's content

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MIN_SIDE = 32  # px: below this no face detector can find a face
MAX_PIXELS = 40_000_000  # default limit (40 MP): above any camera photo, far below a bomb's 20000×20000
MAX_UPLOAD_BYTES = 20 * 2**20  # 20 MB: above any camera JPEG; larger uploads are refused unread (widgets.upload)

ImageFile.LOAD_TRUNCATED_IMAGES = False
_PIL_GUARD = threading.Lock()  # serialises the brief lifts of PIL's global limit in _open
_WARNINGS_GUARD = threading.Lock()  # catch_warnings swaps process-wide filters: one decode at a time inside it
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DEFLATE_LEVEL = 2  # ISA-L's levels run 0-3


def describe(image: ImageLike) -> str:
    """A short name for an input, used in error messages and result rows."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, Image.Image):
        return getattr(image, "filename", "") or f"<PIL image {image.size[0]}x{image.size[1]}>"
    if isinstance(image, bytes):
        return f"<upload of {len(image)} bytes>"
    if isinstance(image, np.ndarray):
        return f"<array {'x'.join(map(str, image.shape))} {image.dtype}>"
    return f"<{type(image).__name__}>"


def check_pixels(width: int, height: int, source: str, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ``ImageTooLargeError`` when width × height exceeds ``max_pixels``."""
    if width * height > max_pixels:
        raise ImageTooLargeError(source, f"image of {width}×{height} pixels exceeds the limit of "
                                         f"{max_pixels / 1e6:g} megapixels (--max-pixels)")


def to_rgb_uint8(array: np.ndarray, source: str = "<array>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Convert grey [H,W] / [H,W,1], RGB, RGBA arrays of uint8, uint16 or float to uint8 RGB
    (at most ``max_pixels`` pixels)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise NotAnImageError(source, f"array of shape {a.shape} is not an H×W, H×W×3 or H×W×4 image")
    check_pixels(a.shape[1], a.shape[0], source, max_pixels)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise NotAnImageError(source, f"unsupported pixel type {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InvalidValuesError(source, "image contains NaN or Inf values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 255:
            raise InvalidValuesError(source, f"float pixel values in [{lo:g}, {hi:g}], expected [0, 1] or [0, 255]")
        a = a * 255.0 if hi <= 1.0 else a
    elif a.dtype == np.uint8:
        pass
    else:  # 16-bit (always a 0..65535 range) or wider integers (0..255 unless larger values occur)
        top = 65535.0 if a.dtype == np.uint16 or a.max() > 255 else 255.0
        a = np.clip(a.astype(np.float64), 0, None) * (255.0 / top)
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8) if a.dtype != np.uint8 else a
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = np.rint(a[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if min(a.shape[:2]) < MIN_SIDE:
        raise ImageTooSmallError(source, f"image is {a.shape[1]}×{a.shape[0]} px, too small for a face "
                                         f"(need at least {MIN_SIDE} px on each side)")
    return np.ascontiguousarray(a)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":
        return np.asarray(img).astype(np.int64)
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in ("RGB", "RGBA", "L"):
        return np.asarray(img)
    if mode in ("LA", "PA", "P"):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def _open(data: Path | bytes) -> Image.Image:
    """``Image.open`` (header only) of a file or an upload's bytes, without PIL's own bomb check, whose
    error would hide the declared size: the callers check it against their limit. The global is lifted
    under a lock, for this call only."""
    with _PIL_GUARD:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def load_image(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load any supported input (a path, an upload's bytes, a PIL image, an array) as uint8 RGB [H, W, 3];
    raise a typed ``InputError`` otherwise, ``ImageTooLargeError`` (before decoding) above ``max_pixels``."""
    source = describe(image)
    if isinstance(image, np.ndarray):
        return to_rgb_uint8(image, source, max_pixels)
    if isinstance(image, Image.Image):
        check_pixels(*image.size, source, max_pixels)
        return to_rgb_uint8(_pil_to_array(image), source, max_pixels)
    if isinstance(image, (str, os.PathLike)):
        data = Path(image)
        if not data.is_file():
            raise NotAFileError(source, "no such file" if not data.exists() else "not a regular file")
        empty = data.stat().st_size == 0
    elif isinstance(image, bytes):
        data, empty = image, not image
    else:
        raise NotAnImageError(source, "expected a path, bytes, a PIL image or a numpy array")
    if empty:
        raise EmptyFileError(source, "file is empty (0 bytes)")
    try:
        with _open(data) as img:
            check_pixels(*img.size, source, max_pixels)
            img.verify()
    except ImageTooLargeError:
        raise
    except Exception:
        raise NotAnImageError(source, "not a readable image file (unknown or broken format)") from None
    try:
        with _WARNINGS_GUARD, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(data) as img:
                img.load()
                array = _pil_to_array(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise CorruptImageError(source, f"image data is truncated or corrupt ({exc})") from None
    return to_rgb_uint8(array, source, max_pixels)


def iter_image_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively, image suffixes only) into a sorted, unique list.

    A path that does not exist is kept, so that the batch run reports it as an error row.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(rgb: np.ndarray) -> bytes:
    """uint8 RGB [H, W, 3] → the bytes of a PNG file (8 bits per channel, not interlaced). Every row has PNG's Sub
    filter (each byte minus the byte one pixel to its left, modulo 256) and is deflated by ISA-L (``isal``) at
    ``PNG_DEFLATE_LEVEL``: a quarter of the time of OpenCV's libpng at its fastest setting, at the same size
    (``research/png_speed.py``)."""
    from isal import isal_zlib

    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or 0 in a.shape:
        raise ValueError(f"encode_png takes uint8 RGB [H, W, 3], not {a.dtype} {list(a.shape)}")
    h, w = a.shape[:2]
    rows = np.ascontiguousarray(a).reshape(h, 3 * w)
    filtered = np.empty((h, 1 + 3 * w), np.uint8)
    filtered[:, 0] = 1  # the row's filter type: Sub
    filtered[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=filtered[:, 4:])
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, adaptive filters, no interlace
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", isal_zlib.compress(filtered.tobytes(), PNG_DEFLATE_LEVEL)) + _png_chunk(b"IEND", b""))
