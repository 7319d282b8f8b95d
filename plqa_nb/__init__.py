"""plqa_nb: pixel-level face image quality (Terhörst et al.) on any face-recognition network.

Flow (one module per stage): images → detection → alignment → backbones → quality →
regression (M_Q) → attribution → plq → experiments → figures / widgets.
"""
from .lazy import lazy_attributes

# imported on first use: `import plqa_nb` (and so `plqa --help`) loads no torch
__getattr__ = lazy_attributes(__name__, {"available_backbones": ".backbones", "load_backbone": ".backbones",
                                         "Explainer": ".pipeline", "Explanation": ".pipeline", "explain": ".pipeline"})

__all__ = ["Explainer", "Explanation", "available_backbones", "explain", "load_backbone"]
__version__ = "0.1.0"
