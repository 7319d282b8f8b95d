"""Attributes of a package imported on first use (PEP 562), so that importing the package stays light.

``plqa --help`` and the registries' name lists must not import torch, OpenCV or Captum; the packages that
re-export heavy classes do it through ``lazy_attributes``.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps an attribute to the (relative) module defining it."""
    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name], package), name)
    return __getattr__
