"""What compliant faces look like to a network: the norm that the defect maps compare a face with.

``CompliantNorm`` holds, per backbone (and independent of the quality estimator), the mean aligned face of
compliant photos (the counterfactual's baseline, ``attribution.counterfactual``) and their feature statistics
(``deviation.FeatureNorm``: the deviation map and the region-feedback threshold, ``attribution.deviation``).
``plqa calibrate`` fits it into the network's calibration bundle (``config``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from ..backbones.base import Backbone
from .deviation import FeatureNorm, fit_feature_norm

MEAN_FACE_SIDE = 48  # px of the shipped mean face: enough for eyes, nose and mouth, too coarse for a person


@dataclass(frozen=True)
class CompliantNorm:
    """What compliant faces look like to a network: in its aligned crop and in its feature space.

    mean_face: uint8 [n, n, 3], the mean of compliant aligned crops at low resolution (n = 48: a blur of many
    faces, no one's face), the counterfactual's baseline; features: their ``deviation.FeatureNorm`` (the region
    feedback's norm and threshold). Neither depends on the quality estimator.
    """

    mean_face: np.ndarray
    features: FeatureNorm

    def face(self, size: int) -> torch.Tensor:
        """The mean face at the crop's size, float [3, S, S] in 0..255."""
        img = cv2.resize(self.mean_face, (size, size), interpolation=cv2.INTER_CUBIC)
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()

    def record(self) -> dict:
        """JSON-ready entries (the calibration file's "compliant_norm")."""
        return {"mean_face": self.mean_face.tolist(), "features": self.features.record()}

    @classmethod
    def from_record(cls, record: dict) -> "CompliantNorm":
        return cls(np.asarray(record["mean_face"], np.uint8), FeatureNorm.from_record(record["features"]))


@lru_cache(maxsize=8)
def parse_compliant_norm(text: str) -> CompliantNorm:
    """The norm of a JSON text (a calibration bundle's entry, ``ModelConfig.compliant_norm``), parsed once."""
    return CompliantNorm.from_record(json.loads(text))


def fit_compliant_norm(backbone: Backbone, faces, device: torch.device | str = "cpu") -> CompliantNorm:
    """The ``CompliantNorm`` of a backbone from compliant aligned faces (``FaceCrop``): their mean face and their
    ``deviation.FeatureNorm``."""
    from ..backbones.base import crops_to_tensor
    from ..regions import region_masks

    crops = np.stack([f.crop for f in faces])
    mean_face = cv2.resize(crops.astype(np.float32).mean(0), (MEAN_FACE_SIDE, MEAN_FACE_SIDE),
                           interpolation=cv2.INTER_AREA).round().clip(0, 255).astype(np.uint8)
    masks = [region_masks(f.landmarks, crops.shape[1]) for f in faces]
    return CompliantNorm(mean_face, fit_feature_norm(backbone, crops_to_tensor(list(crops), device), masks))
