"""Calibration: what is fitted for one network, and how.

* ``bundle``: the calibration bundle, the one file per network that holds every fitted value (read by
  ``config.resolve_config``; the built-in networks' bundles ship in ``plqa_nb/shipped/``);
* ``devset``: the development set a calibration fits on (compliant photos, their degradations, emulated second
  captures, and what "matched" means for the network);
* ``fit``: ``calibrate_bundle``, what ``plqa calibrate`` runs.

This module imports nothing, so that reading a bundle does not load the fitting code.
"""
TARGETS = ("utility", "spread")  # what a calibration fits Q̂ to (``fit``)
