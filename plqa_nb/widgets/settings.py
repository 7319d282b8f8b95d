"""The notebooks' model configuration and quick mode.

The notebooks take a ``plqa_nb.config.ModelConfig`` like every other path (``notebook_config``);
``PLQA_QUICK=1`` shrinks the estimator's arguments, the number of faces and of steps, so every notebook
runs headless in seconds. ``PLQA_STRICT=1`` makes an explorer raise the errors it would otherwise show in
the page (what the notebook tests use, so that a broken widget fails them).
"""
from __future__ import annotations

import os
from typing import Any, TypeVar

from ..backbones import DEFAULT_BACKBONE
from ..config import ModelConfig, resolve_config

T = TypeVar("T")

QUICK_PARAMS = {"serfiq": {"m": 10}, "faceqan": {"k": 2, "l": 1}}  # estimator arguments in quick mode


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when the environment variable PLQA_QUICK is set to 1/true/yes/on (small m, few faces and steps)."""
    return _flag("PLQA_QUICK")


def strict_mode() -> bool:
    """True when PLQA_STRICT is set: explorers raise their errors instead of showing them."""
    return _flag("PLQA_STRICT")


def quick(full: T, small: T) -> T:
    """``small`` in quick mode, else ``full``."""
    return small if quick_mode() else full


def quick_params(quality: str) -> dict[str, Any]:
    """The estimator arguments of quick mode ({} outside it)."""
    return dict(QUICK_PARAMS.get(quality, {})) if quick_mode() else {}


def notebook_config(backbone: str = DEFAULT_BACKBONE, quality: str | None = None, **changes: Any) -> ModelConfig:
    """The notebooks' starting configuration: ``resolve_config`` of the backbone and estimator (their
    defaults when None), with quick mode's small estimator arguments unless ``quality_params`` is given."""
    config = resolve_config(backbone, quality, **{k: v for k, v in changes.items() if k != "quality_params"})
    params = changes.get("quality_params")
    return config.replace(quality_params=quick_params(config.quality) if params is None else params)
