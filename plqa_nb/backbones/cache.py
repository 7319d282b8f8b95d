"""The user cache of converted weights: ``$PLQA_CACHE`` or ``~/.cache/plqa_nb``.

dlib's parsed ``.dat`` file and converted ONNX graphs are written here once and read on later runs; every file is
written atomically, so that a concurrent reader never sees half of one.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

__all__ = ["cache_dir", "write_cache"]


def cache_dir() -> str:
    """The user cache folder of plqa_nb: ``$PLQA_CACHE`` or ``~/.cache/plqa_nb``."""
    return os.environ.get("PLQA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "plqa_nb")


def write_cache(cache: str, save: Callable[[str], None], what: str) -> None:
    """``save(tmp)`` into a temporary file beside ``cache``, then renamed over it (a reader never sees half a file);
    an unwritable folder only warns, naming ``what``."""
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        save(tmp)
        os.replace(tmp, cache)
    except OSError as exc:
        warnings.warn(f"could not cache {what} at {cache}: {exc}")
        try:
            os.remove(tmp)
        except OSError:
            pass
