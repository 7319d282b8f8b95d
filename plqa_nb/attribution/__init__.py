"""Attribution methods on the quality regression model, by name.

Add one: subclass ``AttributionMethod`` (one small file) and ``register_method`` its
factory below. ``available_methods()`` lists the names; ``get_method(name, **params)``
builds a fresh instance (methods hold no state between calls); every method returns raw
attributions [B, 3, S, S] and says in ``view`` how its map is shown ("plq" | "rank").
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from .base import AttributionMethod, seeded_global_rng
from .counterfactual import CounterfactualMethod
from .deviation import DeviationMethod
from .grad_cam import GradCamMethod
from .gradient_shap import GradientShapMethod
from .guided_backprop import GuidedBackpropMethod
from .integrated_gradients import IntegratedGradientsMethod
from .occlusion import OcclusionMethod
from .saliency import InputXGradientMethod, SaliencyMethod
from .smoothgrad import NoiseTunnelMethod

_FACTORIES: dict[str, Callable[..., AttributionMethod]] = {}


def register_method(name: str, factory: Callable[..., AttributionMethod]) -> None:
    """Make ``get_method(name, **params)`` return ``factory(**params)`` (replacing a method of that name)."""
    _FACTORIES[name] = factory


def available_methods() -> list[str]:
    return list(_FACTORIES)


def get_method(name: str, **params) -> AttributionMethod:
    """A new instance of method ``name``; ``params`` go to its constructor (e.g. n_steps=50 for IG)."""
    if name not in _FACTORIES:
        raise KeyError(f"unknown attribution method '{name}'; available: {', '.join(available_methods())}")
    return _FACTORIES[name](**params)


for _name, _factory in (
    ("saliency", SaliencyMethod),
    ("smoothgrad", partial(NoiseTunnelMethod, "smoothgrad", "smoothgrad", view="plq")),
    ("smoothgrad-sq", partial(NoiseTunnelMethod, "smoothgrad-sq", "smoothgrad_sq", view="rank")),
    ("vargrad", partial(NoiseTunnelMethod, "vargrad", "vargrad", view="rank")),
    ("integrated-gradients", partial(IntegratedGradientsMethod, "integrated-gradients", baseline="black")),
    ("integrated-gradients-blur", partial(IntegratedGradientsMethod, "integrated-gradients-blur", baseline="blur")),
    ("integrated-gradients-mean", partial(IntegratedGradientsMethod, "integrated-gradients-mean", baseline="mean")),
    ("gradient-shap", GradientShapMethod),
    ("input-x-gradient", InputXGradientMethod),
    ("guided-backprop", GuidedBackpropMethod),
    ("occlusion", OcclusionMethod),
    ("grad-cam", GradCamMethod),
    ("counterfactual", CounterfactualMethod),
    ("deviation", DeviationMethod),
):
    register_method(_name, _factory)

__all__ = ["AttributionMethod", "available_methods", "get_method", "register_method",
           "seeded_global_rng"]
