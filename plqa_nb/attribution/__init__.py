"""Attribution methods on the quality regression model, by name.

Add one: subclass ``AttributionMethod`` (one small file) and name it in ``_BUILT_IN`` below
(imported on first use), or ``register_method`` its factory. ``available_methods()`` lists the
names; ``get_method(name, **params)`` builds a fresh instance (methods hold no state between
calls); every method returns raw attributions [B, 3, S, S] and says in ``view`` how its map is
shown ("plq" | "rank").
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import AttributionMethod

__getattr__ = lazy_attributes(__name__, {
    "AttributionMethod": ".base", "seeded_global_rng": ".base", "defect_scores": ".base", "rank_view": ".base", "CounterfactualMethod": ".counterfactual",
    "DeviationMethod": ".deviation", "GradCamMethod": ".grad_cam", "GradientShapMethod": ".gradient_shap",
    "GuidedBackpropMethod": ".guided_backprop", "IntegratedGradientsMethod": ".integrated_gradients",
    "OcclusionMethod": ".occlusion", "InputXGradientMethod": ".saliency", "SaliencyMethod": ".saliency",
    "NoiseTunnelMethod": ".smoothgrad"})

# the built-in methods, in listing order: name → (class above, its leading arguments, keywords), imported on first use
_BUILT_IN: dict[str, tuple[str, tuple, dict]] = {
    "saliency": ("SaliencyMethod", (), {}),
    "smoothgrad": ("NoiseTunnelMethod", ("smoothgrad", "smoothgrad"), {"view": "plq"}),
    "smoothgrad-sq": ("NoiseTunnelMethod", ("smoothgrad-sq", "smoothgrad_sq"), {"view": "rank"}),
    "vargrad": ("NoiseTunnelMethod", ("vargrad", "vargrad"), {"view": "rank"}),
    "integrated-gradients": ("IntegratedGradientsMethod", ("integrated-gradients",), {"baseline": "black"}),
    "integrated-gradients-blur": ("IntegratedGradientsMethod", ("integrated-gradients-blur",), {"baseline": "blur"}),
    "integrated-gradients-mean": ("IntegratedGradientsMethod", ("integrated-gradients-mean",), {"baseline": "mean"}),
    "gradient-shap": ("GradientShapMethod", (), {}),
    "input-x-gradient": ("InputXGradientMethod", (), {}),
    "guided-backprop": ("GuidedBackpropMethod", (), {}),
    "occlusion": ("OcclusionMethod", (), {}),
    "grad-cam": ("GradCamMethod", (), {}),
    "counterfactual": ("CounterfactualMethod", (), {}),
    "deviation": ("DeviationMethod", (), {}),
}
_FACTORIES: dict[str, Callable[..., AttributionMethod]] = {}
REFERENCES = ("black", "blur", "mean")  # the images a deletion fills with or IG starts from (baselines.reference)


def register_method(name: str, factory: Callable[..., AttributionMethod]) -> None:
    """Make ``get_method(name, **params)`` return ``factory(**params)`` (replacing a method of that name)."""
    _FACTORIES[name] = factory


def available_methods() -> list[str]:
    return list(dict.fromkeys([*_BUILT_IN, *_FACTORIES]))


def get_method(name: str, **params) -> AttributionMethod:
    """A new instance of method ``name``; ``params`` go to its constructor (e.g. n_steps=50 for IG)."""
    if name not in _FACTORIES and name in _BUILT_IN:
        cls, args, keywords = _BUILT_IN[name]
        register_method(name, partial(__getattr__(cls), *args, **keywords))
    if name not in _FACTORIES:
        raise KeyError(f"unknown attribution method '{name}'; available: {', '.join(available_methods())}")
    method = _FACTORIES[name](**params)
    from .base import ORIENTATIONS, VIEWS

    if method.view not in VIEWS or method.defect_orientation not in ORIENTATIONS:
        raise TypeError(f"attribution method '{name}' ({type(method).__name__}) must set view (one of "
                        f"{', '.join(VIEWS)}) and defect_orientation (one of {', '.join(ORIENTATIONS)})")
    return method


__all__ = ["AttributionMethod", "available_methods", "defect_scores", "get_method", "rank_view", "register_method",
           "seeded_global_rng"]
