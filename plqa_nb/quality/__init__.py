"""Quality estimators by name. Add one: subclass ``QualityEstimator`` and ``register_estimator``.

Names: ``utility`` (a linear head on the network's features predicting the genuine similarity a face will
reach, trained on a development set), ``ers`` (distance from the unrecognisable-identity centre, one
forward pass), ``serfiq`` (Eq. 1, head-only dropout passes), ``faceqan`` (adversarial noise). The built-in
classes are imported on first use, so listing the names imports no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import QualityEstimator

_HOMES = {"QualityEstimator": ".base", "QualityScaling": ".base", "seeded_generator": ".base", "seeded_uniform": ".base", "FaceQan": ".faceqan",
          "Recognizability": ".recognizability", "ui_centre": ".recognizability", "SerFiq": ".serfiq",
          "serfiq_full_network": ".serfiq", "UtilityHead": ".utility"}
__getattr__ = lazy_attributes(__name__, _HOMES)

# the built-in estimators: name → the class (an attribute above), imported when the name is first resolved
_BUILT_IN = {"serfiq": "SerFiq", "faceqan": "FaceQan", "ers": "Recognizability", "utility": "UtilityHead"}
_ESTIMATORS: dict[str, type[QualityEstimator]] = {}


def register_estimator(name: str, cls: type[QualityEstimator]) -> None:
    """Make ``get_estimator(name, **params)`` build ``cls(**params)``."""
    _ESTIMATORS[name] = cls


def available_estimators() -> list[str]:
    return sorted(set(_ESTIMATORS) | set(_BUILT_IN))


def estimator_class(name: str) -> type[QualityEstimator]:
    """The class registered as ``name`` (a built-in one is registered now); KeyError listing the available names."""
    if name not in _ESTIMATORS and name in _BUILT_IN:
        register_estimator(name, __getattr__(_BUILT_IN[name]))
    if name not in _ESTIMATORS:
        raise KeyError(f"unknown quality estimator '{name}'; available: {', '.join(available_estimators())}")
    return _ESTIMATORS[name]


def get_estimator(name: str, **params) -> QualityEstimator:
    """A new estimator by name; ``params`` go to its constructor (e.g. m=10 for SER-FIQ)."""
    return estimator_class(name)(**params)


__all__ = ["FaceQan", "QualityEstimator", "QualityScaling", "Recognizability", "SerFiq", "available_estimators",
           "estimator_class", "get_estimator", "register_estimator", "seeded_generator",
           "seeded_uniform", "serfiq_full_network", "ui_centre", "UtilityHead"]
