"""Per-network data that ships with the package, one JSON file per network and kind, each fitted by
``scripts/ship_defaults.py`` (or, for another network, by ``plqa calibrate`` into a calibration file):

* ``ui_centres/``: the unrecognisable-identity centre of ERS (``quality/recognizability.py``);
* ``heads/``: the utility head (``quality/utility.py``);
* ``norms/``: what compliant faces look like to the network, for localising defects (``attribution/compliant_norm.py``).

A record is matched to a network by the fingerprint of its weights (``Backbone.fingerprint``), never by name,
so a network of another name with the same weights finds it and one with other weights does not.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ..backbones.base import Backbone


@lru_cache(maxsize=None)
def _records(kind: str) -> dict[str, dict]:
    """The records of ``shipped/<kind>/*.json`` by the fingerprint of the weights they were made for."""
    folder = resources.files(__package__).joinpath(kind)
    out = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.endswith(".json"):
                record = json.loads(path.read_text())
                out[record["weights_sha1"]] = record
    return out


def shipped_record(kind: str, backbone: Backbone) -> dict | None:
    """The record of ``kind`` shipped for these weights, or None."""
    return _records(kind).get(backbone.fingerprint())
