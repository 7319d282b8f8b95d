"""plqa_nb: pixel-level face image quality (Terhörst et al.) on any face-recognition network.

Flow (one module per stage): images → detection → alignment → backbones → quality →
regression (M_Q) → attribution → plq → experiments → figures / widgets.
"""
from .backbones import available_backbones, load_backbone
from .pipeline import Explainer, Explanation, explain

__all__ = ["Explainer", "Explanation", "available_backbones", "explain", "load_backbone"]
__version__ = "0.1.0"
