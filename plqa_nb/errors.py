"""Typed errors for input problems: each names the file and the problem.

Batch runs catch ``InputError`` (record a row, go on); anything else is a bug.
"""
from __future__ import annotations


class InputError(Exception):
    """A problem with one input (file or array); ``source`` names it."""

    kind = "input"

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class NotAFileError(InputError):
    kind = "not_a_file"


class EmptyFileError(InputError):
    kind = "empty"


class NotAnImageError(InputError):
    kind = "not_an_image"


class CorruptImageError(InputError):
    kind = "corrupt"


class ImageTooSmallError(InputError):
    kind = "too_small"


class ImageTooLargeError(InputError):
    """The header declares more pixels than the limit; nothing was decoded."""

    kind = "too_large"


class InvalidValuesError(InputError):
    kind = "invalid_values"


class NoFaceError(InputError):
    kind = "no_face"


class ModelUnavailableError(RuntimeError):
    """A backbone's weights cannot be loaded (offline, missing package, ...)."""


class FolderLockedError(RuntimeError):
    """Another live process is writing into the same output folder (one writer per folder)."""


class NumericalError(RuntimeError):
    """A numeric guard fired (Σe near zero, non-finite gradients) and no fallback applies."""
