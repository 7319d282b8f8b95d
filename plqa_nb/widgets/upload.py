"""Photos uploaded through a page (the explorers and ``plqa app``): refused with a sentence for people when
they are too large or not images, never decoded past the limits, kept in memory only."""
from __future__ import annotations

import numpy as np

from ..errors import ImageTooLargeError, InputError
from ..images import MAX_PIXELS, MAX_UPLOAD_BYTES, load_image


class UploadRefused(ValueError):
    """An upload the page does not take; the message is written for the person who sent it."""


def read_upload(name: str, content: bytes, size: int = 0, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The uploaded photo as uint8 RGB [H, W, 3], decoded in memory. ``size``: the file's size as the page
    declared it (``plqa app``'s page sends a file above the limit without its content).

    Raises ``UploadRefused``: more than ``max_bytes``, sent or declared (checked before anything is read), a
    header declaring more than ``max_pixels`` pixels (checked before decoding), or not a readable image."""
    nbytes = max(len(content), size)
    if nbytes > max_bytes:
        raise UploadRefused(f"“{name}” is {nbytes / 2**20:.1f} MB; photos up to {max_bytes / 2**20:g} MB are "
                            f"accepted. Please send a smaller file.")
    try:
        return load_image(bytes(content), max_pixels)
    except ImageTooLargeError as exc:
        raise UploadRefused(f"“{name}” is refused: {exc.problem}.") from None
    except InputError as exc:
        raise UploadRefused(f"“{name}” is not a photo this page can read ({exc.problem}). "
                            f"Please send a JPEG or PNG photo.") from None
