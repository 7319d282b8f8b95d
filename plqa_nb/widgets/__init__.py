"""Widgets of the notebooks: one module per notebook, each a set of pure functions (inputs → plotly Figure
or a list-of-dicts table) and a ``build_*_ui()`` that wires ipywidgets to them.

``tutorial`` (01), ``compare`` (02, attribution methods), ``inpainting`` (03), ``masking`` (04),
``icao`` (05), ``evaluation`` (06), ``app`` (the page of ``plqa app``). Shared, by concern: ``settings`` (the notebooks' ``ModelConfig`` and quick mode:
PLQA_QUICK=1 shrinks the estimator's arguments, faces and steps so every notebook runs headless in
seconds), ``plotting`` (plotly traces and grids), ``display`` (tables, progress, output rendering) and
``explorer`` (the explorers' base classes and the choice of example faces), ``upload`` (photos sent
through a page: size and type checked before decoding). The stages themselves are the pipeline's
(``plqa_nb.pipeline.FaceAnalysis``); no widget computes one.
"""
from ..pipeline import FaceAnalysis
from .compare import build_compare_ui
from .display import progress_bar, show_table
from .explorer import london_sessions, most_compliant, pick_face
from .icao import build_icao_ui
from .inpainting import build_inpainting_ui
from .masking import build_masking_ui
from .settings import notebook_config, quick, quick_mode
from .tutorial import build_tutorial_ui

__all__ = ["FaceAnalysis", "build_compare_ui", "build_icao_ui", "build_inpainting_ui", "build_masking_ui",
           "build_tutorial_ui", "london_sessions", "most_compliant", "notebook_config", "pick_face", "progress_bar", "quick",
           "quick_mode", "show_table"]
