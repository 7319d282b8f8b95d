"""One model configuration, resolved once: what a Q̂ and a PLQ map depend on.

``resolve_config`` builds a frozen ``ModelConfig`` in one order:

    registry defaults (the backbone's ``BackboneDefaults``) ← calibration file ← explicit arguments

* A calibration file that was fitted for another backbone, estimator or Eq. 3 norm than the one asked
  for raises ``ValueError`` (its α, r, γ would be meaningless there).
* Every fallback warns (``CalibrationFallbackWarning``): an estimator without calibrated (α, r) for the
  backbone, a γ fitted for the other norm.
* Reading the defaults builds no network (they come from the backbone registry).

The batch path (``Explainer``), the staged single-face path (``FaceAnalysis``), ``plqa compare`` and the
notebooks all take a ``ModelConfig``; it is hashable and compares by content, so caches key on it.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .backbones import DEFAULT_BACKBONE, Backbone, backbone_spec
from .quality import QualityEstimator, QualityScaling, estimator_class, get_estimator, read_calibration

NORMS = ("signed", "l1")


class CalibrationFallbackWarning(UserWarning):
    """A setting fell back to an uncalibrated value."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a Q̂ and a PLQ map depend on (besides the photo and the attribution method).

    backbone: registry name (or a custom backbone's name); crop_size: its crop side S (px);
    quality: estimator name; quality_params: its constructor arguments as sorted (name, value) pairs;
    alpha, r: Eq. 2, Q̂ = sigmoid(alpha (Q − r)); gamma: Eq. 6 exponent; norm: the Eq. 3 denominator
    ("signed" Σe or "l1" ‖e‖₁); clip_grad: per-image gradient L2 bound (None: off); seed: of every
    stochastic step; estimator_state: per-backbone state of the estimator from a calibration file (sorted
    (key, value) pairs, e.g. ERS's centre); compliant_norm: a calibration file's compliant-face norm for
    localising defects (JSON text, "" = the one shipped for the backbone); source: where α, r, γ came from (not
    part of equality).
    """

    backbone: str = DEFAULT_BACKBONE
    crop_size: int = 150
    quality: str = "ers"
    quality_params: tuple[tuple[str, Any], ...] = ()
    alpha: float = 1.0
    r: float = 0.0
    gamma: float = 10.0
    norm: str = "l1"
    clip_grad: float | None = None
    seed: int = 0
    estimator_state: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    compliant_norm: str = field(default="", repr=False)
    source: str = field(default="", compare=False)

    def scaling(self) -> QualityScaling:
        """Eq. 2 and Eq. 6 parameters."""
        return QualityScaling(alpha=self.alpha, r=self.r, gamma=self.gamma)

    def make_estimator(self) -> QualityEstimator:
        """A new estimator instance with this configuration's arguments and calibrated state."""
        est = get_estimator(self.quality, **dict(self.quality_params))
        if self.estimator_state:
            est.use_calibration({k: list(v) if isinstance(v, tuple) else v for k, v in self.estimator_state})
        return est

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with ``changes`` (no re-resolution: use ``with_estimator`` to switch estimators)."""
        if "quality_params" in changes:
            changes["quality_params"] = _params(changes["quality_params"])
        return replace(self, **changes)

    def with_estimator(self, quality: str, quality_params: Mapping[str, Any] | None = None) -> "ModelConfig":
        """The configuration with another estimator: its own (α, r) from the registry; γ, norm, seed and
        clipping kept."""
        return resolve_config(self.backbone, quality, quality_params=quality_params, norm=self.norm, gamma=self.gamma,
                              clip_grad=self.clip_grad, seed=self.seed)

    def describe(self) -> str:
        """One line for people, e.g. "dlib-resnet · ers · α 148.8, r 0.1017 · γ 12.69 · ‖e‖₁ · seed 0"."""
        params = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in self.quality_params)
        norm = "‖e‖₁" if self.norm == "l1" else "Σe"
        clip = f" · clip {self.clip_grad:g}" if self.clip_grad is not None else ""
        return (f"{self.backbone} · {self.quality}{f' ({params})' if params else ''} · α {self.alpha:.4g}, "
                f"r {self.r:.4g} · γ {self.gamma:.4g} · {norm}{clip} · seed {self.seed}"
                + (f" ({self.source})" if self.source else ""))


def _params(params: Mapping[str, Any] | tuple | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(dict(params or {}).items()))


def estimator_state(quality: str, record: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The entries of a calibration record that estimator ``quality`` keeps as state (its
    ``calibration_keys``), as sorted, hashable (key, value) pairs; lists become tuples of floats."""
    keys = estimator_class(quality).calibration_keys
    return tuple(sorted((k, tuple(float(v) for v in record[k]) if isinstance(record[k], (list, tuple)) else record[k])
                        for k in keys if k in record))


def resolve_config(backbone: str | Backbone = DEFAULT_BACKBONE, quality: str | None = None,
                   calibration: str | os.PathLike | Mapping | None = None, *, norm: str | None = None,
                   alpha: float | None = None, r: float | None = None, gamma: float | None = None,
                   quality_params: Mapping[str, Any] | None = None, clip_grad: float | None = None,
                   seed: int = 0) -> ModelConfig:
    """The configuration of ``backbone`` (a registry name or a ``Backbone``): registry defaults ← the
    calibration file (path or its dict) ← the explicit arguments (None: not given).

    Raises:
        ValueError: the calibration file is unreadable or was made for another backbone, estimator or norm.
        KeyError: unknown backbone or estimator.
    """
    if isinstance(backbone, Backbone):
        name, defaults, crop_size = backbone.name, backbone.defaults, backbone.crop_size
    else:
        spec = backbone_spec(backbone)
        name, defaults, crop_size = spec.name, spec.defaults, spec.crop_size
    if norm is not None and norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    record, source = {}, f"defaults of {name}"
    if calibration is not None:
        record = dict(calibration) if isinstance(calibration, Mapping) else read_calibration(calibration)
        source = "calibration" if isinstance(calibration, Mapping) else os.fspath(calibration)
        _check_record(record, source, name, quality, norm)
    quality = quality or record.get("quality_method") or defaults.quality
    estimator_class(quality)  # KeyError for an unknown name, before anything else
    norm = norm or record.get("norm") or defaults.norm
    if "alpha" in record:
        fitted = (float(record["alpha"]), float(record["r"]), float(record["gamma"]))
    else:
        fitted = _registry_scaling(name, defaults, quality, norm, explicit=(alpha, r, gamma))
    return ModelConfig(backbone=name, crop_size=int(crop_size), quality=quality, quality_params=_params(quality_params),
                       alpha=float(fitted[0] if alpha is None else alpha), r=float(fitted[1] if r is None else r),
                       gamma=float(fitted[2] if gamma is None else gamma), norm=norm,
                       clip_grad=None if clip_grad is None else float(clip_grad), seed=int(seed),
                       estimator_state=estimator_state(quality, record),
                       compliant_norm=json.dumps(record["compliant_norm"], sort_keys=True) if "compliant_norm" in record
                       else "", source=source)


def _check_record(record: dict, source: str, backbone: str, quality: str | None, norm: str | None) -> None:
    """Refuse a calibration file made for another backbone, estimator or norm than the one asked for."""
    try:
        float(record["alpha"]), float(record["r"]), float(record["gamma"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: not a calibration file (missing or bad {exc})") from None
    for key, asked, what in (("backbone", backbone, "backbone"), ("quality_method", quality, "quality estimator"),
                             ("norm", norm, "Eq. 3 norm")):
        made = record.get(key)
        if asked is not None and made is not None and made != asked:
            raise ValueError(f"{source} was fitted for {what} '{made}', not '{asked}': its α, r, γ do not apply; "
                             f"run `plqa calibrate` for '{asked}' or drop the option")
    if "compliant_norm" in record and "features" not in record["compliant_norm"]:
        raise ValueError(f"{source}: its compliant-face norm has no feature statistics (written before the deviation "
                         "map): run `plqa calibrate` again")
    missing = [k for k in ("backbone", "quality_method", "norm") if k not in record]
    if missing:
        warnings.warn(f"{source} does not say its {', '.join(missing)}: assuming the ones in use",
                      CalibrationFallbackWarning, stacklevel=3)


def _registry_scaling(name: str, defaults, quality: str, norm: str,
                      explicit: tuple[float | None, float | None, float | None]) -> tuple[float, float, float]:
    """(α, r, γ) of the backbone's defaults, warning where a value is not calibrated for this estimator/norm
    (and not given explicitly)."""
    alpha, r, gamma = explicit
    if quality in defaults.scaling:
        a, b = defaults.scaling[quality]
    else:
        a, b = 1.0, 0.0
        if alpha is None or r is None:
            warnings.warn(f"backbone '{name}' has no calibrated scaling for estimator '{quality}': using α = 1, "
                          f"r = 0 (Q̂ is then not comparable across estimators); run `plqa calibrate --quality "
                          f"{quality}`", CalibrationFallbackWarning, stacklevel=3)
    if norm != defaults.norm and gamma is None:
        warnings.warn(f"γ = {defaults.gamma} of backbone '{name}' was fitted with the '{defaults.norm}' Eq. 3 norm, "
                      f"not '{norm}': maps are not on the calibrated scale; run `plqa calibrate --norm {norm}`",
                      CalibrationFallbackWarning, stacklevel=3)
    return a, b, defaults.gamma
