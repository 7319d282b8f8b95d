"""Calibration bundles that ship with the package (data files, read by ``plqa_nb.config``):

* ``<backbone>.json``: the bundle of a built-in network, written by ``plqa calibrate`` (``make calibrations``);
* ``paper/<family>.json``: the α, r, γ the paper gives for its networks, the start of an uncalibrated network.
"""
