"""Widgets of the notebooks: one module per notebook, each a set of pure functions (inputs → plotly Figure
or a list-of-dicts table) and a ``build_*_ui()`` that wires ipywidgets to them.

``tutorial`` (01), ``compare`` (02, attribution methods), ``inpainting`` (03), ``masking`` (04),
``icao`` (05); ``common`` holds ``FaceSession`` (a per-face cache of the pipeline's stages), ``Settings``
and ``quick_mode()``: the environment variable PLQA_QUICK=1 shrinks the estimator's arguments, the number
of faces and of steps, so every notebook runs headless in seconds.
"""
from .common import (FaceSession, Settings, default_settings, london_sessions, pick_face, progress_bar, quick,
                     quick_mode, show_table)
from .compare import build_compare_ui
from .icao import build_icao_ui
from .inpainting import build_inpainting_ui
from .masking import build_masking_ui
from .tutorial import build_tutorial_ui

__all__ = ["FaceSession", "Settings", "build_compare_ui", "build_icao_ui", "build_inpainting_ui",
           "build_masking_ui", "build_tutorial_ui", "default_settings", "london_sessions", "pick_face",
           "progress_bar", "quick", "quick_mode", "show_table"]
