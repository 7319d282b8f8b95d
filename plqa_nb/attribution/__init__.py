"""Attribution methods on the quality regression model, by name.

Add one: subclass ``AttributionMethod`` (one small file) and ``register_method`` an
instance below. ``available_methods()`` lists the names; every method returns raw
attributions [B, 3, S, S] and says in ``view`` how its map is shown ("plq" | "rank").
"""
from __future__ import annotations

from .base import AttributionMethod, seeded_global_rng
from .grad_cam import GradCamMethod
from .gradient_shap import GradientShapMethod
from .guided_backprop import GuidedBackpropMethod
from .integrated_gradients import IntegratedGradientsMethod
from .occlusion import OcclusionMethod
from .saliency import InputXGradientMethod, SaliencyMethod
from .smoothgrad import NoiseTunnelMethod

_METHODS: dict[str, AttributionMethod] = {}


def register_method(method: AttributionMethod) -> None:
    """Make ``method`` available under ``method.name`` (replacing one of the same name)."""
    _METHODS[method.name] = method


def available_methods() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> AttributionMethod:
    if name not in _METHODS:
        raise KeyError(f"unknown attribution method '{name}'; available: {', '.join(available_methods())}")
    return _METHODS[name]


for _method in (
    SaliencyMethod(),
    NoiseTunnelMethod("smoothgrad", "smoothgrad", view="plq"),
    NoiseTunnelMethod("smoothgrad-sq", "smoothgrad_sq", view="rank"),
    NoiseTunnelMethod("vargrad", "vargrad", view="rank"),
    IntegratedGradientsMethod("integrated-gradients", baseline="black"),
    IntegratedGradientsMethod("integrated-gradients-blur", baseline="blur"),
    IntegratedGradientsMethod("integrated-gradients-mean", baseline="mean"),
    GradientShapMethod(),
    InputXGradientMethod(),
    GuidedBackpropMethod(),
    OcclusionMethod(),
    GradCamMethod(),
):
    register_method(_method)

__all__ = ["AttributionMethod", "available_methods", "get_method", "register_method", "seeded_global_rng"]
