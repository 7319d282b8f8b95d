"""The verbs of ``plqa``, one module each with ``register(subparsers)`` and ``run(args)``.

``VERBS``: verb → its line in ``plqa --help``; the CLI imports a verb's module only when that verb is chosen.
"""
VERBS = {
    "explain": "pixel-level quality maps for photos",
    "quality": "quality scores only, one CSV row per photo",
    "calibrate": "fit a network's calibration bundle from development photos",
    "bench": "time the PLQ flow: latencies, ratios, throughput and memory",
    "experiment": "the paper's analyses: random masks, inpainting, ICAO violations",
    "compare": "compare attribution methods, with deletion/insertion faithfulness",
    "evaluate": "evaluate quality estimators on face verification",
    "app": "the explorers as a web page without code (Voilà), on this machine",
}
