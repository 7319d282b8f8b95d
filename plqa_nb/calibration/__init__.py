"""Calibration: fitting a network's calibration bundle (the bundle itself, the file every verb reads, is
``plqa_nb.config.CalibrationBundle``; the built-in networks' bundles ship in ``plqa_nb/shipped/``).

* ``devset``: the development set a calibration fits on (compliant photos, their degradations, emulated second
  captures, and what "matched" means for the network);
* ``fit``: ``calibrate_bundle``, what ``plqa calibrate`` runs.

This module imports nothing, so that the command line can list its choices without loading the fitting code.
"""
TARGETS = ("utility", "spread")  # what a calibration fits Q̂ to (``fit``)
