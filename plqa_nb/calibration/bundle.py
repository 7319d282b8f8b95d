"""The calibration bundle: everything fitted for one network, in one file.

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
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

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
