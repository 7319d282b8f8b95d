"""One model configuration: the calibration bundle that holds every fitted value of a network, and the
``ModelConfig`` resolved from it, which is what a Q̂ and a PLQ map depend on.

**The calibration bundle** (``CalibrationBundle``): everything fitted for one network, in one file.

``plqa calibrate DEV_PHOTOS --backbone NAME --out BUNDLE.json`` writes it; ``--calibration BUNDLE.json`` reads it
in every verb, the notebooks and the app; the bundles shipped for the built-in networks are that command's own output
(``plqa_nb/shipped/<backbone>.json``). Fitted values live in these files only, never in code.

A bundle holds, for one backbone (named, and tied to its weights by ``Backbone.fingerprint``):

* ``norm``: the Eq. 3 denominator the maps were calibrated with, and ``default_estimator``;
* per estimator (``estimators``): α and r of Eq. 2, γ of Eq. 6 and the estimator's own fitted state (ERS's
  unrecognisable-identity centre, the utility head's weights), with the number of photos it was fitted on;
* ``compliant_norm``: what compliant faces look like to the network (mean face, feature statistics and the flag
  threshold of the region feedback), independent of the estimator;
* provenance: ``made_with`` (the command line), ``photos``, ``seed``, ``match_threshold`` (the cosine at FMR 1e-3 on
  the development set) and ``dev_comparisons``.

``paper`` bundles (``plqa_nb/shipped/paper/*.json``) carry the values the paper gives for its networks (no weights,
no state): the starting point of a network of that family that nobody has calibrated yet.

**The resolved configuration** (``ModelConfig``), resolved once.

``resolve_config`` builds a frozen ``ModelConfig`` in one order:

    the backbone's calibration bundle (a file given with ``calibration``, else the one shipped
    for the backbone, else the paper's values for its family) ← explicit arguments

* A bundle that was fitted for another backbone raises ``ValueError`` (its α, r, γ would be meaningless there);
  one fitted for other weights of the same name is refused when the network is loaded (``check_weights``).
* Every fallback warns (``CalibrationFallbackWarning``): an estimator the bundle does not calibrate, a network with
  only the paper's values, a γ fitted for the other norm.
* Reading a bundle builds no network.

The batch path (``Explainer``), the staged single-face path (``FaceAnalysis``), ``plqa compare`` and the
notebooks all take a ``ModelConfig``; it is hashable and compares by content, so caches key on it.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .backbones import DEFAULT_BACKBONE, Backbone, backbone_spec
from .detection import DEFAULT_DETECTOR
from .images import MAX_PIXELS
from .quality import QualityEstimator, QualityScaling, estimator_class, get_estimator

SCHEMA = "plqa-calibration"
SCHEMA_VERSION = 1
NORMS = ("signed", "l1")


@dataclass(frozen=True)
class EstimatorCalibration:
    """One estimator's calibration: Q̂ = sigmoid(alpha (Q − r)) (Eq. 2), gamma of Eq. 6 (gradients w.r.t. 0..255
    pixels, for the bundle's norm), ``state`` (its ``calibration_keys``: JSON values), ``photos`` fitted on."""

    alpha: float
    r: float
    gamma: float
    state: Mapping[str, Any] = field(default_factory=dict)
    photos: int = 0

    def record(self) -> dict:
        return {"alpha": self.alpha, "r": self.r, "gamma": self.gamma, "photos": self.photos, "state": dict(self.state)}


@dataclass(frozen=True)
class CalibrationBundle:
    """A network's calibration (see the module docstring); ``source``: where it was read from (not stored)."""

    backbone: str
    norm: str
    default_estimator: str
    estimators: Mapping[str, EstimatorCalibration]
    weights_sha1: str = ""
    compliant_norm: Mapping[str, Any] | None = None
    made_with: str = ""
    photos: int = 0
    seed: int = 0
    match_threshold: float | None = None
    dev_comparisons: int = 0
    source: str = field(default="", compare=False)

    def record(self) -> dict:
        """The JSON object of the file (keys in a fixed order; the norm's arrays last, they are long)."""
        out = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "backbone": self.backbone,
               "weights_sha1": self.weights_sha1, "made_with": self.made_with, "photos": self.photos,
               "seed": self.seed, "norm": self.norm, "default_estimator": self.default_estimator,
               "match_threshold": self.match_threshold, "dev_comparisons": self.dev_comparisons,
               "estimators": {k: v.record() for k, v in self.estimators.items()}}
        if self.compliant_norm is not None:
            out["compliant_norm"] = dict(self.compliant_norm)
        return out

    def text(self) -> str:
        """The file's text: one line per entry, so that a diff of two bundles stays readable."""
        rec = self.record()
        lines = [f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in rec.items() if k != "estimators"]
        est = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in rec["estimators"].items())
        lines.insert(list(rec).index("estimators"), f' "estimators": {{\n{est}\n }}')
        return "{\n" + ",\n".join(lines) + "\n}\n"

    def merged(self, other: "CalibrationBundle") -> "CalibrationBundle":
        """This bundle with ``other``'s estimators added (other wins on a name); both for the same weights."""
        if (other.backbone, other.weights_sha1, other.norm) != (self.backbone, self.weights_sha1, self.norm):
            raise ValueError("cannot merge calibrations of different networks or norms")
        from dataclasses import replace

        return replace(self, estimators={**self.estimators, **other.estimators})

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], source: str = "<record>") -> "CalibrationBundle":
        """Validate and read a bundle's JSON object; ValueError naming ``source`` and what is wrong."""
        if not isinstance(rec, Mapping):
            raise ValueError(f"{source}: not a calibration bundle (no JSON object)")
        if rec.get("schema") != SCHEMA:
            old = " (a calibration file of an older plqa_nb version: run `plqa calibrate` again)" \
                if "alpha" in rec else ""
            raise ValueError(f"{source}: not a calibration bundle{old}")
        if rec.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{source}: calibration bundle schema version {rec.get('schema_version')}, this "
                             f"plqa_nb reads {SCHEMA_VERSION}: run `plqa calibrate` again")
        try:
            estimators = {name: EstimatorCalibration(float(e["alpha"]), float(e["r"]), float(e["gamma"]),
                                                     dict(e.get("state", {})), int(e.get("photos", 0)))
                          for name, e in rec["estimators"].items()}
            bundle = cls(backbone=str(rec["backbone"]), norm=str(rec["norm"]),
                         default_estimator=str(rec["default_estimator"]), estimators=estimators,
                         weights_sha1=str(rec.get("weights_sha1") or ""), compliant_norm=rec.get("compliant_norm"),
                         made_with=str(rec.get("made_with", "")), photos=int(rec.get("photos", 0)),
                         seed=int(rec.get("seed", 0)), match_threshold=rec.get("match_threshold"),
                         dev_comparisons=int(rec.get("dev_comparisons", 0)), source=source)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{source}: malformed calibration bundle ({type(exc).__name__}: {exc})") from None
        if bundle.norm not in NORMS:
            raise ValueError(f"{source}: norm {bundle.norm!r} is not one of {NORMS}")
        if not estimators:
            raise ValueError(f"{source}: the bundle calibrates no estimator")
        if bundle.compliant_norm is not None and "features" not in bundle.compliant_norm:
            raise ValueError(f"{source}: its compliant-face norm has no feature statistics: run `plqa calibrate` "
                             "again")
        return bundle


def read_bundle(path: str | os.PathLike) -> CalibrationBundle:
    """The bundle in a JSON file; ValueError naming the file when it cannot be read or is not a bundle."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a calibration bundle ({exc})") from None
    return CalibrationBundle.from_record(rec, os.fspath(path))


def shipped_bundle_path(backbone: str) -> Path | None:
    """The file of the bundle shipped for a built-in backbone name, or None."""
    path = resources.files("plqa_nb.shipped").joinpath(f"{backbone}.json")
    return Path(str(path)) if path.is_file() else None


@lru_cache(maxsize=None)
def shipped_bundle(backbone: str) -> CalibrationBundle | None:
    """The bundle shipped for a built-in backbone name (``plqa_nb/shipped/<name>.json``), or None."""
    path = shipped_bundle_path(backbone)
    return None if path is None else read_bundle(path)


@lru_cache(maxsize=None)
def paper_bundle(family: str) -> CalibrationBundle | None:
    """The paper's values for a network family ("arcface", "facenet"; ``plqa_nb/shipped/paper/``), or None."""
    path = resources.files("plqa_nb.shipped").joinpath("paper", f"{family}.json")
    return read_bundle(Path(str(path))) if path.is_file() else None


class CalibrationFallbackWarning(UserWarning):
    """A setting fell back to an uncalibrated value."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a Q̂ and a PLQ map depend on (besides the photo and the attribution method).

    backbone: registry name (or a custom backbone's name); crop_size: its crop side S (px);
    quality: estimator name; quality_params: its constructor arguments as sorted (name, value) pairs;
    alpha, r: Eq. 2, Q̂ = sigmoid(alpha (Q − r)); gamma: Eq. 6 exponent; norm: the Eq. 3 denominator
    ("signed" Σe or "l1" ‖e‖₁); clip_grad: per-image gradient L2 bound (None: off); seed: of every
    stochastic step; estimator_state: the estimator's fitted state from the bundle (sorted (key, value) pairs, e.g.
    ERS's centre); compliant_norm: the bundle's compliant-face norm for localising defects (JSON text, "" = none);
    weights_sha1: the fingerprint of the weights the bundle was fitted for ("" = any); detector: the face detector
    (a name of ``detection.DETECTORS``); max_pixels: photos above this many pixels are refused before decoding;
    bundle: the calibration bundle the values came from (not part of equality); source: where α, r, γ came from
    (not part of equality).
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
    weights_sha1: str = field(default="", repr=False)
    detector: str = DEFAULT_DETECTOR
    max_pixels: int = MAX_PIXELS
    bundle: CalibrationBundle | None = field(default=None, compare=False, repr=False)
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
        """The configuration with another estimator: its own (α, r, γ) and state from the same bundle; norm, seed
        and clipping kept."""
        return resolve_config(self.backbone, quality, self.bundle, quality_params=quality_params, norm=self.norm,
                              clip_grad=self.clip_grad, seed=self.seed, detector=self.detector,
                              max_pixels=self.max_pixels)

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


def _hashable_state(state: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """An estimator's state as sorted, hashable (key, value) pairs; lists become tuples of floats."""
    return tuple(sorted((k, tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v)
                        for k, v in state.items()))


def default_bundle(backbone: str, family: str) -> CalibrationBundle | None:
    """The bundle a backbone gets without ``--calibration``: the one shipped for its name, else the paper's values
    for its family (``Backbone.paper_family``), else None."""
    return shipped_bundle(backbone) or paper_bundle(family)


def load_calibration(calibration: str | os.PathLike | Mapping | CalibrationBundle) -> CalibrationBundle:
    """A bundle from a file path, its JSON object or a bundle."""
    if isinstance(calibration, CalibrationBundle):
        return calibration
    if isinstance(calibration, Mapping):
        return CalibrationBundle.from_record(calibration, "calibration")
    return read_bundle(calibration)


def resolve_config(backbone: str | Backbone = DEFAULT_BACKBONE, quality: str | None = None,
                   calibration: str | os.PathLike | Mapping | CalibrationBundle | None = None, *,
                   norm: str | None = None, alpha: float | None = None, r: float | None = None,
                   gamma: float | None = None, quality_params: Mapping[str, Any] | None = None,
                   clip_grad: float | None = None, seed: int = 0, detector: str = DEFAULT_DETECTOR,
                   max_pixels: int = MAX_PIXELS) -> ModelConfig:
    """The configuration of ``backbone`` (a registry name or a ``Backbone``): its calibration bundle (the file, JSON
    object or bundle given, else ``default_bundle``) ← the explicit arguments (None: not given).

    Raises:
        ValueError: the calibration is unreadable or was made for another backbone.
        KeyError: unknown backbone or estimator.
    """
    if isinstance(backbone, Backbone):
        name, defaults, crop_size = backbone.name, backbone.defaults, backbone.crop_size
    else:
        spec = backbone_spec(backbone)
        name, defaults, crop_size = spec.name, spec.defaults, spec.crop_size
    if norm is not None and norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    if calibration is not None:
        bundle = load_calibration(calibration)
        if bundle.backbone != name and bundle.weights_sha1:  # a paper bundle names a family, not a network
            raise ValueError(f"{bundle.source} was fitted for backbone '{bundle.backbone}', not '{name}': its α, r, "
                             f"γ do not apply; run `plqa calibrate DEV_PHOTOS --backbone {name}` or drop the option")
    else:
        bundle = default_bundle(name, defaults.family)
    quality = quality or (bundle.default_estimator if bundle is not None else defaults.quality)
    estimator_class(quality)  # KeyError for an unknown name, before anything else
    norm = norm or (bundle.norm if bundle is not None else defaults.norm)
    if calibration is not None:
        _check_asked(bundle, quality, norm, explicit=(alpha, r, gamma))
    fitted = _fitted(name, bundle, quality, norm, explicit=(alpha, r, gamma))
    paper = bundle is not None and not bundle.weights_sha1
    return ModelConfig(backbone=name, crop_size=int(crop_size), quality=quality, quality_params=_params(quality_params),
                       alpha=float(fitted.alpha if alpha is None else alpha), r=float(fitted.r if r is None else r),
                       gamma=float(fitted.gamma if gamma is None else gamma), norm=norm,
                       clip_grad=None if clip_grad is None else float(clip_grad), seed=int(seed),
                       estimator_state=_hashable_state(fitted.state),
                       compliant_norm="" if bundle is None or bundle.compliant_norm is None
                       else json.dumps(bundle.compliant_norm, sort_keys=True),
                       weights_sha1="" if bundle is None else bundle.weights_sha1, detector=detector,
                       max_pixels=int(max_pixels), bundle=bundle,
                       source=f"{bundle.source}{' (the paper' + chr(39) + 's values)' if paper else ''}"
                       if bundle is not None else "uncalibrated")


def _check_asked(bundle: CalibrationBundle, quality: str, norm: str,
                 explicit: tuple[float | None, float | None, float | None]) -> None:
    """Refuse a bundle given explicitly for an estimator or a norm it was not fitted for (its values would not
    apply), unless the values in question are given too."""
    alpha, r, gamma = explicit
    if quality not in bundle.estimators and (alpha is None or r is None):
        raise ValueError(f"{bundle.source} was fitted for quality estimator(s) {', '.join(bundle.estimators)}, not "
                         f"'{quality}': run `plqa calibrate DEV_PHOTOS --backbone {bundle.backbone} --quality "
                         f"{quality} --calibration {bundle.source} --out NEW.json` to add it, or drop the option")
    if norm != bundle.norm and gamma is None:
        raise ValueError(f"{bundle.source} was fitted for Eq. 3 norm '{bundle.norm}', not '{norm}': its γ does not "
                         f"apply; run `plqa calibrate --norm {norm}` or drop the option")


def _fitted(name: str, bundle: CalibrationBundle | None, quality: str, norm: str,
            explicit: tuple[float | None, float | None, float | None]) -> EstimatorCalibration:
    """The bundle's calibration of ``quality``, warning where a value falls back (and is not given explicitly)."""
    alpha, r, gamma = explicit
    entry = None if bundle is None else bundle.estimators.get(quality)
    if entry is None:
        any_gamma = None if bundle is None else bundle.estimators[bundle.default_estimator].gamma
        if alpha is None or r is None or (gamma is None and any_gamma is None):
            warnings.warn(f"backbone '{name}' has no calibrated scaling for estimator '{quality}': using α = 1, r = 0"
                          f"{'' if any_gamma is not None else ', γ = 10'} (Q̂ is then not comparable across "
                          f"estimators); run `plqa calibrate DEV_PHOTOS --backbone {name} --quality {quality}`",
                          CalibrationFallbackWarning, stacklevel=3)
        return EstimatorCalibration(1.0, 0.0, 10.0 if any_gamma is None else any_gamma)
    if not bundle.weights_sha1 and (alpha is None or r is None):
        warnings.warn(f"backbone '{name}' is not calibrated: using the paper's values for its family "
                      f"({bundle.source}); run `plqa calibrate DEV_PHOTOS --backbone {name}`",
                      CalibrationFallbackWarning, stacklevel=3)
    if norm != bundle.norm and gamma is None:
        warnings.warn(f"γ = {entry.gamma:.4g} of backbone '{name}' was fitted with the '{bundle.norm}' Eq. 3 norm, "
                      f"not '{norm}': maps are not on the calibrated scale; run `plqa calibrate --norm {norm}`",
                      CalibrationFallbackWarning, stacklevel=3)
    return entry


def check_weights(config: ModelConfig, backbone: Backbone) -> None:
    """Refuse a configuration whose bundle was fitted for other weights than ``backbone``'s (ValueError)."""
    if config.weights_sha1 and config.weights_sha1 != backbone.fingerprint():
        where = config.source or "the calibration"
        raise ValueError(f"{where} was fitted for other weights of '{config.backbone}' than the ones loaded: run "
                         f"`plqa calibrate DEV_PHOTOS --backbone {config.backbone} --out calib.json` and pass "
                         "--calibration calib.json")
