"""Face regions of an aligned crop from its five landmarks, and mean PLQ per region.

Landmarks are MTCNN's five points in crop pixels (left eye, right eye, nose, left and right
mouth corner; left/right as seen in the image). Shapes are laid out in a face frame: origin at
the eye midpoint, u along the eye line, v perpendicular (downwards), both in units of the
inter-ocular distance d, so the regions follow roll, scale and position of the face.

Regions (disjoint, bool [S, S]): eyes, nose, mouth, forehead, cheeks (the face regions), and
background (everything outside the face oval: backdrop, hair, ears, neck).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

FACE_REGIONS = ("eyes", "nose", "mouth", "forehead", "cheeks")
REGIONS = FACE_REGIONS + ("background",)

# Face-frame geometry, units of d (inter-ocular distance); an adult face is about 2 d wide
# (cheek to cheek) and its hairline to chin about 2.5 d.
_EYE_AXES = (0.30, 0.18)
_NOSE_HALF_WIDTH = 0.20
_MOUTH_MARGIN = (0.12, 0.20)  # added to half the mouth width, vertical half-axis
_FOREHEAD = (0.0, -0.62, 0.72, 0.32)  # centre u, v, half-axes
_CHEEK = (0.58, 0.27, 0.22)  # |u| of the centre, half-axes; v of the centre is between nose and mouth
_FACE = (0.0, 0.30, 0.98, 1.28)  # the face oval


@dataclass(frozen=True)
class FaceFrame:
    """Face coordinates of a crop: ``to_uv`` maps crop pixels to (u, v) in units of d."""

    origin: np.ndarray  # [2] crop px, eye midpoint
    ex: np.ndarray  # [2] unit vector along the eye line
    ey: np.ndarray  # [2] unit vector down the face
    d: float  # inter-ocular distance, crop px
    size: int  # crop side S

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, size: int) -> "FaceFrame":
        """Frame from landmarks [5, 2] (crop px) of an S×S crop."""
        p = np.asarray(landmarks, np.float64)
        eye_vec = p[1] - p[0]
        d = float(np.linalg.norm(eye_vec))
        if d < 1e-6:
            raise ValueError("eye landmarks coincide")
        ex = eye_vec / d
        return cls(origin=(p[0] + p[1]) / 2, ex=ex, ey=np.array([-ex[1], ex[0]]), d=d, size=int(size))

    def to_uv(self, points: np.ndarray) -> np.ndarray:
        """Crop px [..., 2] → face frame (u, v) [..., 2]."""
        rel = np.asarray(points, np.float64) - self.origin
        return np.stack([rel @ self.ex, rel @ self.ey], -1) / self.d

    def to_px(self, uv: np.ndarray) -> np.ndarray:
        """Face frame (u, v) [..., 2] → crop px [..., 2]."""
        uv = np.asarray(uv, np.float64)
        return self.origin + self.d * (uv[..., :1] * self.ex + uv[..., 1:] * self.ey)

    @cached_property
    def grid_uv(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of every pixel centre, two arrays [S, S] (computed once per frame)."""
        ys, xs = np.mgrid[0:self.size, 0:self.size].astype(np.float64)
        uv = self.to_uv(np.stack([xs, ys], -1))
        return uv[..., 0], uv[..., 1]

    def ellipse(self, cu: float, cv: float, au: float, av: float) -> np.ndarray:
        """bool [S, S]: inside the axis-aligned (in the face frame) ellipse centred (cu, cv), half-axes au, av."""
        u, v = self.grid_uv
        return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0

    def polygon(self, uv: np.ndarray) -> np.ndarray:
        """bool [S, S]: inside the polygon with vertices uv [N, 2] (face frame)."""
        mask = np.zeros((self.size, self.size), np.uint8)
        pts = np.round(self.to_px(np.asarray(uv)) * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)


def region_masks(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Disjoint region masks bool [S, S] for ``REGIONS`` plus ``face`` (the face oval, union of the rest
    inside it)."""
    f = FaceFrame.from_landmarks(landmarks, size)
    uv = f.to_uv(np.asarray(landmarks, np.float64))
    nose_v = max(float(uv[2, 1]), 0.2)
    mouth_c = (uv[3] + uv[4]) / 2
    mouth_half = max(abs(float(uv[4, 0] - uv[3, 0])) / 2, 0.2)
    face = f.ellipse(*_FACE)
    eyes = f.ellipse(*uv[0], *_EYE_AXES) | f.ellipse(*uv[1], *_EYE_AXES)
    nose = f.ellipse(float(uv[2, 0]), 0.62 * nose_v, _NOSE_HALF_WIDTH, 0.62 * nose_v) & ~eyes
    mouth = f.ellipse(float(mouth_c[0]), float(mouth_c[1]), mouth_half + _MOUTH_MARGIN[0], _MOUTH_MARGIN[1])
    cheek_v = (nose_v + float(mouth_c[1])) / 2
    cu, au, av = _CHEEK
    cheeks = (f.ellipse(-cu, cheek_v, au, av) | f.ellipse(cu, cheek_v, au, av)) & ~(eyes | nose | mouth)
    forehead = f.ellipse(*_FOREHEAD) & ~eyes
    masks = {"eyes": eyes, "nose": nose, "mouth": mouth & ~nose, "forehead": forehead, "cheeks": cheeks}
    masks = {k: m & face for k, m in masks.items()}
    masks["background"] = ~face
    masks["face"] = face
    return masks


def region_means(plq: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean PLQ [S, S] inside each mask (NaN for an empty mask, e.g. a region cut off by the crop)."""
    plq = np.asarray(plq, np.float64)
    return {k: float(plq[m].mean()) if m.any() else float("nan") for k, m in masks.items()}


def worst_region(means: dict[str, float]) -> str:
    """The face region (``FACE_REGIONS``) with the lowest mean PLQ."""
    vals = {k: means[k] for k in FACE_REGIONS if not np.isnan(means[k])}
    return min(vals, key=vals.get)


def covered_regions(occluder: np.ndarray, masks: dict[str, np.ndarray], min_fraction: float = 0.4) -> list[str]:
    """Face regions of which at least ``min_fraction`` of the pixels lie under ``occluder`` (bool [S, S])."""
    return [k for k in FACE_REGIONS if masks[k].any() and (occluder & masks[k]).sum() >= min_fraction * masks[k].sum()]


def saliency_shares(saliency: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Per face region: mean log Ŝ in the region minus mean log Ŝ over the face oval (natural log).

    Scale-free: a global factor on the map (Q̂, the Eq. 3 normaliser, gamma) cancels out.
    """
    log_s = np.log(np.maximum(np.asarray(saliency, np.float64), 1e-30))
    face = log_s[masks["face"]].mean()
    return {k: float(log_s[masks[k]].mean() - face) if masks[k].any() else float("nan") for k in FACE_REGIONS}


def degraded_region(shares: dict[str, float], shares_ref: dict[str, float]) -> tuple[str, float]:
    """The face region whose share of the saliency fell most against a compliant reference of the same face.

    Returns (region, ratio): ratio = exp(change of the region's share); below 1 means the region lost
    sensitivity relative to the rest of the face. Comparing with the same face cancels the backbone's
    own layout (e.g. eyes always less salient than the nose), which the plain lowest-mean ranking keeps.
    """
    change = {k: shares[k] - shares_ref[k] for k in FACE_REGIONS
              if not (np.isnan(shares[k]) or np.isnan(shares_ref[k]))}
    worst = min(change, key=change.get)
    return worst, float(np.exp(change[worst]))


PAIRED = ("eyes", "cheeks")  # regions with a left and a right part: one occluded side is enough to flag them


def region_parts(masks: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(region, bool [S, S]) parts of the face regions: ``PAIRED`` regions split at the face oval's centre column
    (the aligned face's vertical axis), the others whole; empty parts left out."""
    centre = np.nonzero(masks["face"])[1].mean()
    left = np.arange(masks["face"].shape[1])[None, :] < centre
    parts = []
    for k in FACE_REGIONS:
        parts += [(k, masks[k] & left), (k, masks[k] & ~left)] if k in PAIRED else [(k, masks[k])]
    return [(k, m) for k, m in parts if m.any()]


def _scored_parts(deviation: np.ndarray, masks: dict[str, np.ndarray]) -> list[tuple[str, float, np.ndarray]]:
    """(region, mean deviation, bool [S, S] part) per ``region_parts`` part of a deviation map [S, S]."""
    return [(k, float(deviation[m].mean()), m) for k, m in region_parts(masks)]


def flag_scores(deviation: np.ndarray, masks: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """(region, score) per ``region_parts`` part of a deviation map [S, S] (``attribution.deviation``): the part's
    mean deviation (already relative to compliant faces: 1 ≈ typical)."""
    return [(k, score) for k, score, _ in _scored_parts(deviation, masks)]


def flag_part(deviation: np.ndarray, masks: dict[str, np.ndarray], norm) -> tuple[str, float, np.ndarray]:
    """The part of the face that stands out against compliant faces, by a deviation map [S, S]: the part with the
    highest ``flag_scores`` score, if that score exceeds ``norm.threshold`` (a ``deviation.FeatureNorm``: what
    compliant faces' highest score stays below, but for a chosen share). Returns (its region, or "" when nothing
    stands out; the highest score; the part, bool [S, S]: one eye or one cheek of a paired region, to outline on
    the photo, all False when nothing stands out)."""
    region, score, part = max(_scored_parts(deviation, masks), key=lambda p: p[1])
    if score > norm.threshold:
        return region, score, part
    return "", score, np.zeros_like(part)


def flag_region(deviation: np.ndarray, masks: dict[str, np.ndarray], norm) -> tuple[str, float]:
    """``flag_part``'s (region or "", highest score)."""
    region, score, _ = flag_part(deviation, masks, norm)
    return region, score
