"""The experiments' names and defaults, light to import: ``plqa experiment --help`` offers them without loading
torch. Each experiment module re-exports its own (``masking.SIZES``, ``inpainting.FILLS``, ``icao.VIOLATIONS``…)."""
from __future__ import annotations

#: random-square sides on the paper's 112-px scale (its five sizes)
MASKING_SIZES = (10, 20, 30, 40, 50)

#: how an inpainting mask is filled; the default recovers quality best on the development photos
#: (docs/results/analyses.md)
FILLS = ("mean-face", "mirror", "telea", "ns")
DEFAULT_FILL = "mean-face"
#: where an inpainting mask comes from: the explanation's mask, the paper's low-PLQ rule, a synthetic occluder
MASK_SOURCES = ("plq", "paper", "occluder")
DEFAULT_MASK = "plq"

#: the ICAO categories, and each synthetic violation's category, in the order they run
ICAO_CATEGORIES = ("occlusion", "lighting", "sharpness", "geometry", "background")
ICAO_VIOLATIONS = {"sunglasses": "occlusion", "face_mask": "occlusion", "cap": "occlusion",
                   "hand_on_cheek": "occlusion", "side_light": "lighting", "overexposure": "lighting",
                   "underexposure": "lighting", "blur": "sharpness", "noise": "sharpness", "jpeg": "sharpness",
                   "pixelation": "sharpness", "roll": "geometry", "background_clutter": "background"}
#: the map behind flagged_region (why: docs/analyses.md)
DRIVER = "deviation"
