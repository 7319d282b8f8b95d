"""Evaluating attribution maps for face quality (faithfulness curves, agreement, figures) and quality estimators
(error versus discard, ``erc``)."""
from __future__ import annotations

from . import erc
from .comparison import Comparison, MethodResult, compare_methods, method_view, rank_view, spearman_matrix
from .faithfulness import (Curves, auc, curve_fractions, face_random_orders, faithfulness_curves, pixel_order,
                           quality_infidelity, quality_sensitivity, random_orders)

__all__ = ["Comparison", "Curves", "MethodResult", "auc", "compare_methods", "curve_fractions", "erc",
           "face_random_orders", "faithfulness_curves", "method_view", "pixel_order", "quality_infidelity",
           "quality_sensitivity", "random_orders", "rank_view", "spearman_matrix"]
