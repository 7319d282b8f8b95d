"""Evaluating attribution maps for face quality (faithfulness curves, agreement, figures) and quality estimators
(error versus discard, ``erc``)."""
from __future__ import annotations

from ..lazy import lazy_attributes

# imported on first use, so that the submodule `erc` and its constants come without torch
__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(["Comparison", "MethodResult", "compare_methods", "spearman_matrix"], ".comparison"),
    **dict.fromkeys(["Curves", "auc", "curve_fractions", "face_random_orders", "faithfulness_curves", "pixel_order",
                     "quality_infidelity", "quality_sensitivity", "random_orders"], ".faithfulness")})

__all__ = ["Comparison", "Curves", "MethodResult", "auc", "compare_methods", "curve_fractions", "erc",
           "face_random_orders", "faithfulness_curves", "pixel_order", "quality_infidelity",
           "quality_sensitivity", "random_orders", "spearman_matrix"]
