"""Quality estimators by name. Add one: subclass ``QualityEstimator`` and ``register_estimator``.

Names: ``utility`` (a linear head on the network's features predicting the genuine similarity a face will
reach, trained on a development set), ``ers`` (distance from the unrecognisable-identity centre, one
forward pass), ``serfiq`` (Eq. 1, head-only dropout passes), ``faceqan`` (adversarial noise).
"""
from __future__ import annotations

from .base import QualityEstimator, QualityScaling, read_calibration, seeded_generator, seeded_uniform
from .faceqan import FaceQan
from .recognizability import Recognizability, ui_centre
from .serfiq import SerFiq, serfiq_full_network
from .utility import UtilityHead

_ESTIMATORS: dict[str, type[QualityEstimator]] = {}


def register_estimator(name: str, cls: type[QualityEstimator]) -> None:
    """Make ``get_estimator(name, **params)`` build ``cls(**params)``."""
    _ESTIMATORS[name] = cls


def available_estimators() -> list[str]:
    return sorted(_ESTIMATORS)


def estimator_class(name: str) -> type[QualityEstimator]:
    """The class registered as ``name``; KeyError listing the available names."""
    if name not in _ESTIMATORS:
        raise KeyError(f"unknown quality estimator '{name}'; available: {', '.join(available_estimators())}")
    return _ESTIMATORS[name]


def get_estimator(name: str, **params) -> QualityEstimator:
    """A new estimator by name; ``params`` go to its constructor (e.g. m=10 for SER-FIQ)."""
    return estimator_class(name)(**params)


register_estimator("serfiq", SerFiq)
register_estimator("faceqan", FaceQan)
register_estimator("ers", Recognizability)
register_estimator("utility", UtilityHead)

__all__ = ["FaceQan", "QualityEstimator", "QualityScaling", "Recognizability", "SerFiq", "available_estimators",
           "estimator_class", "get_estimator", "read_calibration", "register_estimator", "seeded_generator",
           "seeded_uniform", "serfiq_full_network", "ui_centre", "UtilityHead"]
