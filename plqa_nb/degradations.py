"""Image degradations (uint8 [H, W, 3]), shared by analyses, calibration and evaluation, and their one registry.

``KINDS`` names every kind of degradation with its function and parameter. A ``Protocol`` is a named selection of
kinds at fixed values: ``DEV_PROTOCOL`` (the development set of ``plqa calibrate``), ``HELD_OUT_PROTOCOL`` (the
held-out checks of ``research/quality_checks.py``) and ``PHOTO_PROTOCOL`` (the degraded probes of an ERC dataset).
Sizes given on the paper's 112-px scale are converted with ``to_crop_px``; a protocol's lengths are on the scale of
its ``crop_scale`` (the same 112-px crop) or ``photo_scale`` (a photo whose longer side is 600 px).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable, Mapping, NamedTuple

import cv2
import numpy as np


def face_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    """The random generator of one face and purpose: depends on ``seed``, the file name of ``name`` (no
    folders, so a run gives the same result wherever the photos lie) and ``purpose`` only, not on the
    order or batching of the inputs."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{PurePath(str(name)).name}|{purpose}".encode())])


def to_crop_px(size_112: float, crop_size: int) -> int:
    """A length on the paper's 112-px crop scale → pixels of a crop of side ``crop_size``."""
    return max(1, int(round(size_112 * crop_size / 112.0)))


def black_square(crop: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """Copy of ``crop`` with a black size×size square whose top-left corner is (x, y)."""
    out = crop.copy()
    out[y:y + size, x:x + size] = 0
    return out


def random_square_position(rng: np.random.Generator, crop_size: int, size: int, inner: float = 0.9) -> tuple[int, int]:
    """Top-left (x, y) of a size×size square placed uniformly inside the central ``inner`` part of the crop."""
    margin = int(round(crop_size * (1 - inner) / 2))
    hi = max(margin, crop_size - margin - size)
    return int(rng.integers(margin, hi + 1)), int(rng.integers(margin, hi + 1))


def gaussian_blur(crop: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` in pixels."""
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma)


def gaussian_noise(crop: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of ``std`` grey levels (0..255), clipped."""
    return np.clip(crop + rng.normal(0, std, crop.shape), 0, 255).astype(np.uint8)


def jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    """JPEG compression round trip at ``quality`` (1..100)."""
    ok, enc = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].copy()


def pixelate(crop: np.ndarray, block: int) -> np.ndarray:
    """Mosaic with ``block``-pixel cells."""
    s = crop.shape[0]
    small = cv2.resize(crop, (max(1, s // block), max(1, s // block)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (crop.shape[1], s), interpolation=cv2.INTER_NEAREST)


def soft_alpha(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """bool mask [S, S] → float32 alpha [S, S] in 0..1 with edges softened by a Gaussian of ``sigma`` px."""
    alpha = mask.astype(np.float32)
    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma, sigmaY=sigma) if sigma > 0 else alpha


def paint(crop: np.ndarray, alpha: np.ndarray, colour: np.ndarray | tuple[float, float, float],
          rng: np.random.Generator | None = None, texture: float = 0.0) -> np.ndarray:
    """Blend an occluder onto ``crop``: alpha float [S, S] (0..1), colour RGB [3] or image [S, S, 3] (0..255),
    plus per-pixel grey-level noise of std ``texture`` drawn from ``rng`` (needed when texture > 0)."""
    layer = np.broadcast_to(np.asarray(colour, np.float32), crop.shape).astype(np.float32)
    if texture > 0:
        layer = layer + rng.normal(0.0, texture, crop.shape[:2])[..., None]
    a = np.asarray(alpha, np.float32)[..., None]
    return np.clip((1 - a) * crop + a * layer, 0, 255).round().astype(np.uint8)


def directional_light(crop: np.ndarray, direction: tuple[float, float], strength: float) -> np.ndarray:
    """One-sided light: brightness × (1 + strength·t), t running linearly from -1 to 1 across the crop along
    ``direction`` (x, y; need not be unit)."""
    s = crop.shape[0]
    dx, dy = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    ys, xs = np.mgrid[0:s, 0:crop.shape[1]].astype(np.float64)
    t = ((xs - (crop.shape[1] - 1) / 2) * dx + (ys - (s - 1) / 2) * dy) / ((s - 1) / 2)
    gain = 1 + strength * np.clip(t, -1, 1)
    return np.clip(crop * gain[..., None], 0, 255).round().astype(np.uint8)


def exposure(crop: np.ndarray, stops: float) -> np.ndarray:
    """Exposure change by ``stops`` (×2**stops on linear light, sRGB gamma 2.2 approximated), clipped."""
    lin = (crop / 255.0) ** 2.2 * (2.0 ** stops)
    return (np.clip(lin, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)


def rotate(crop: np.ndarray, points: np.ndarray, degrees: float,
           centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """In-plane rotation (roll) by ``degrees`` (counter-clockwise on screen) about ``centre`` (x, y px).

    Returns the rotated crop (borders mirrored) and ``points`` [N, 2] mapped the same way.
    """
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    out = cv2.warpAffine(crop, m, (crop.shape[1], crop.shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    return out, np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def clutter(crop: np.ndarray, where: np.ndarray, rng: np.random.Generator, shapes: int = 40) -> np.ndarray:
    """Replace the pixels in ``where`` (bool [S, S]) by a busy scene of random coloured rectangles and discs."""
    h, w = crop.shape[:2]
    scene = np.full_like(crop, rng.integers(0, 256, 3, dtype=np.uint8))
    for _ in range(shapes):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max(2, w // 30), max(3, w // 6)))
        if rng.random() < 0.5:
            cv2.rectangle(scene, (x - r, y - r // 2), (x + r, y + r), colour, -1)
        else:
            cv2.circle(scene, (x, y), r, colour, -1)
    return np.where(where[..., None], scene, crop)


def motion_blur(crop: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur over ``length`` px (at least 3) at ``angle`` degrees."""
    k_len = max(3, int(length))
    kernel = np.zeros((k_len, k_len), np.float32)
    kernel[k_len // 2, :] = 1
    rot = cv2.getRotationMatrix2D((k_len / 2 - 0.5, k_len / 2 - 0.5), float(angle), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k_len, k_len))
    return cv2.filter2D(crop, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def down_up(crop: np.ndarray, factor: float) -> np.ndarray:
    """Down-sampling by ``factor`` (area) and back up (bicubic): a low-resolution face."""
    s = max(2, int(round(crop.shape[0] / factor)))
    small = cv2.resize(crop, (s, s), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_CUBIC)


def salt_and_pepper(crop: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A ``share`` of the pixels set to black or white (half each)."""
    out = crop.copy()
    u = rng.random(crop.shape[:2])
    out[u < share / 2] = 0
    out[u > 1 - share / 2] = 255
    return out


def gamma(crop: np.ndarray, g: float) -> np.ndarray:
    """Tone curve 255·(x/255)**g: g > 1 darkens the mid-tones (low light), g < 1 brightens them."""
    return (255.0 * (crop / 255.0) ** g).round().clip(0, 255).astype(np.uint8)


def contrast(crop: np.ndarray, k: float) -> np.ndarray:
    """Contrast scaled by ``k`` about the crop's mean colour."""
    mean = crop.reshape(-1, 3).mean(0)
    return (mean + k * (crop.astype(np.float32) - mean)).round().clip(0, 255).astype(np.uint8)


def colour_cast(crop: np.ndarray, strength: float) -> np.ndarray:
    """A colour cast: red × (1 + strength), blue × (1 − strength), clipped; strength > 0 warm, < 0 cold."""
    gains = np.array([1 + strength, 1.0, 1 - strength])
    return (crop * gains).round().clip(0, 255).astype(np.uint8)


def darken(crop: np.ndarray, offset: float) -> np.ndarray:
    """Every channel lowered by ``offset`` grey levels (0..255), clipped at black: a dim, flat exposure."""
    return (crop.astype(np.float32) - offset).round().clip(0, 255).astype(np.uint8)


def desaturate(crop: np.ndarray, amount: float) -> np.ndarray:
    """Colour blended towards the pixel's grey (mean of the channels) by ``amount`` in [0, 1]."""
    grey = crop.astype(np.float32).mean(2, keepdims=True)
    return ((1 - amount) * crop + amount * grey).round().clip(0, 255).astype(np.uint8)


def vignette(crop: np.ndarray, strength: float) -> np.ndarray:
    """Brightness × (1 − strength · ρ²), ρ the distance from the crop's centre relative to its corner."""
    h, w = crop.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    rho2 = ((xs - (w - 1) / 2) ** 2 + (ys - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    return (crop * (1 - strength * rho2)[..., None]).round().clip(0, 255).astype(np.uint8)


def posterize(crop: np.ndarray, levels: int) -> np.ndarray:
    """Each channel quantised to ``levels`` grey levels (centres of equal bins of 0..255)."""
    step = 256 / int(levels)
    return ((np.floor(crop / step) + 0.5) * step).round().clip(0, 255).astype(np.uint8)


def haze(crop: np.ndarray, amount: float, level: float = 200.0) -> np.ndarray:
    """A veil: the crop blended towards grey ``level`` by ``amount`` in [0, 1]."""
    return ((1 - amount) * crop + amount * level).round().clip(0, 255).astype(np.uint8)


# -- the registry ---------------------------------------------------------------------------------------------------
Scale = Callable[[float], float]
"""A length on a protocol's reference scale → pixels of the image being degraded."""


def crop_scale(image: np.ndarray) -> Scale:
    """Lengths on the paper's 112-px scale of an aligned crop [S, S, 3] (``to_crop_px`` before rounding)."""
    side = image.shape[0]
    return lambda length: length * side / 112


def photo_scale(image: np.ndarray) -> Scale:
    """Lengths on a photo [H, W, 3] whose longer side is 600 px (a London photo: the face is about 250 px wide)."""
    factor = max(image.shape[:2]) / 600
    return lambda length: length * factor


def pixels(scale: Scale, length: float) -> int:
    """A length on ``scale``'s reference scale → whole pixels, at least 1."""
    return max(1, round(scale(length)))


def _square(image: np.ndarray, side: float, rng: np.random.Generator, scale: Scale) -> np.ndarray:
    px = pixels(scale, side)
    return black_square(image, *random_square_position(rng, image.shape[0], px), px)


def _disc(image: np.ndarray, diameter: float, rng: np.random.Generator, scale: Scale) -> np.ndarray:
    h, w = image.shape[:2]
    centre = (int(w / 2 + rng.uniform(-0.12, 0.12) * w), int(h / 2 + rng.uniform(-0.12, 0.12) * h))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    out = image.copy()
    cv2.circle(out, centre, pixels(scale, diameter / 2), colour, -1)
    return out


def _shadow(image: np.ndarray, strength: float, rng: np.random.Generator, scale: Scale) -> np.ndarray:
    side = 1.0 if rng.random() < 0.5 else -1.0
    return directional_light(image, (side, float(rng.normal(0, 0.3))), strength)


class Kind(NamedTuple):
    """A kind of degradation: ``apply(image, value, rng, scale)`` → a degraded copy; ``parameter`` says what the
    value is ("length": on the reference scale of ``scale``)."""

    parameter: str
    apply: Callable[[np.ndarray, float, np.random.Generator, Scale], np.ndarray]


KINDS: dict[str, Kind] = {
    "blur": Kind("Gaussian σ (length)", lambda im, v, rng, scale: gaussian_blur(im, scale(v))),
    "motion": Kind("motion blur length (length) at a random angle",
                   lambda im, v, rng, scale: motion_blur(im, pixels(scale, v), float(rng.uniform(0, 180)))),
    "jpeg": Kind("JPEG quality (1..100)", lambda im, v, rng, scale: jpeg(im, int(v))),
    "noise": Kind("Gaussian noise std (grey levels)", lambda im, v, rng, scale: gaussian_noise(im, v, rng)),
    "pixelate": Kind("mosaic cell (length)", lambda im, v, rng, scale: pixelate(im, pixels(scale, v))),
    "downscale": Kind("down-sampling factor", lambda im, v, rng, scale: down_up(im, v)),
    "salt_and_pepper": Kind("share of pixels set black or white",
                            lambda im, v, rng, scale: salt_and_pepper(im, v, rng)),
    "square": Kind("side (length) of a black square placed at random in the central 90 %", _square),
    "disc": Kind("diameter (length) of a disc of a random colour within 12 % of the centre", _disc),
    "exposure": Kind("exposure change (stops)", lambda im, v, rng, scale: exposure(im, v)),
    "haze": Kind("veil amount (0..1)", lambda im, v, rng, scale: haze(im, v)),
    "shadow": Kind("strength of a light from the left or right at random", _shadow),
    "gamma": Kind("tone-curve exponent (> 1 darkens)", lambda im, v, rng, scale: gamma(im, v)),
    "contrast": Kind("contrast factor", lambda im, v, rng, scale: contrast(im, v)),
    "colour_cast": Kind("cast strength (> 0 warm, < 0 cold)", lambda im, v, rng, scale: colour_cast(im, v)),
    "random_cast": Kind("cast strength, warm or cold at random",
                        lambda im, v, rng, scale: colour_cast(im, v if rng.random() < 0.5 else -v)),
    "darken": Kind("offset (grey levels; < 0 lightens)", lambda im, v, rng, scale: darken(im, v)),
    "desaturate": Kind("blend towards grey (0..1)", lambda im, v, rng, scale: desaturate(im, v)),
    "vignette": Kind("vignette strength (0..1)", lambda im, v, rng, scale: vignette(im, v)),
    "posterize": Kind("grey levels per channel", lambda im, v, rng, scale: posterize(im, v)),
}


def find_kind(name: str) -> Kind:
    """The registered kind ``name``; a KeyError that lists the known kinds otherwise."""
    if name not in KINDS:
        known = "; ".join(f"{k} ({v.parameter})" for k, v in KINDS.items())
        raise KeyError(f"unknown degradation kind '{name}'; known kinds: {known}")
    return KINDS[name]


class Degradation(NamedTuple):
    """One entry of a protocol: a kind of ``KINDS`` and its values, from mild to severe."""

    kind: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Protocol:
    """Named degradations at fixed values (name → ``Degradation``), lengths on the reference scale of ``scale``
    (``crop_scale`` or ``photo_scale``). Every kind must be registered in ``KINDS``."""

    scale: Callable[[np.ndarray], Scale]
    entries: Mapping[str, Degradation]

    def __post_init__(self) -> None:
        for entry in self.entries.values():
            find_kind(entry.kind)

    def entry(self, name: str) -> Degradation:
        """The entry ``name``; a KeyError that lists the protocol's entries otherwise."""
        if name not in self.entries:
            raise KeyError(f"unknown degradation '{name}'; available: {', '.join(self.entries)}")
        return self.entries[name]

    def levels(self) -> list[tuple[str, int, float]]:
        """(name, level 1.., value) of every value of every entry, mild to severe."""
        return [(name, level, v) for name, entry in self.entries.items() for level, v in enumerate(entry.values, 1)]

    def apply(self, image: np.ndarray, name: str, value: float, rng: np.random.Generator) -> np.ndarray:
        """A copy of ``image`` degraded by the kind of entry ``name`` at ``value`` (lengths on this protocol's
        scale), random choices drawn from ``rng``."""
        return find_kind(self.entry(name).kind).apply(image, value, rng, self.scale(image))


# The development set of ``plqa calibrate`` (``calibration/devset.py``), on crops. Its values are part of the shipped
# calibration bundles: changing one changes what ``make check-calibrations`` reproduces.
DEV_PROTOCOL = Protocol(crop_scale, {
    "blur": Degradation("blur", (1, 2, 3, 4, 6)),
    "jpeg": Degradation("jpeg", (30, 15, 8, 5, 3)),
    "pixelate": Degradation("pixelate", (3, 5, 7, 9, 12)),
    "noise": Degradation("noise", (10, 25, 40, 60, 80)),
    "square": Degradation("square", (20, 35, 50, 65, 80)),
    "underexposure": Degradation("exposure", (-1.5, -2.5, -3.5)),
    "overexposure": Degradation("exposure", (1.0, 2.0, 3.0)),
    "haze": Degradation("haze", (0.3, 0.5, 0.7)),
    "shadow": Degradation("shadow", (0.5, 0.75, 0.95)),
    # mild photometric changes cost the network little (~0.001 of genuine similarity), and a head that never saw
    # them reads them as harmless or better: without these its median Q̂ rose from the clean photo to gamma 1.8
    "gamma": Degradation("gamma", (1.5, 2.2, 3.0, 4.0)),
    "contrast": Degradation("contrast", (0.6, 0.4, 0.25, 0.12)),
    "cast": Degradation("random_cast", (0.15, 0.3, 0.5)),
})

# The held-out checks of ``research/quality_checks.py``, on crops. Motion blur, down-scaling, salt and pepper,
# darkening and lightening by an offset, desaturation, vignetting, posterisation and brightening by a tone curve are
# not in ``DEV_PROTOCOL`` at all; blur, JPEG, noise, gamma, contrast, a warm and a cold colour cast, under- and
# overexposure and squares are, at other values (under- and overexposure from 1.5 and 1 stop there, from half a stop
# here).
HELD_OUT_PROTOCOL = Protocol(crop_scale, {
    "blur": Degradation("blur", (1.5, 2.5, 3.5, 5)),
    "motion": Degradation("motion", (6, 12, 20)),
    "downscale": Degradation("downscale", (3, 5, 8)),
    "jpeg": Degradation("jpeg", (20, 10, 6, 4)),
    "noise": Degradation("noise", (15, 30, 50)),
    "salt_and_pepper": Degradation("salt_and_pepper", (0.02, 0.06, 0.15)),
    "gamma": Degradation("gamma", (1.8, 2.6, 3.5)),
    "contrast": Degradation("contrast", (0.5, 0.3, 0.15)),
    "darken": Degradation("darken", (25, 50, 80)),
    "desaturate": Degradation("desaturate", (0.5, 0.8, 1.0)),
    "vignette": Degradation("vignette", (0.4, 0.7, 0.95)),
    "posterize": Degradation("posterize", (16, 8, 4)),
    "brighten": Degradation("gamma", (0.7, 0.5, 0.35)),
    "lighten": Degradation("darken", (-25, -50, -80)),
    "underexposure": Degradation("exposure", (-0.5, -1.0, -2.0)),
    "overexposure": Degradation("exposure", (0.5, 1.0, 1.5)),
    "warm_cast": Degradation("colour_cast", (0.2, 0.4, 0.6)),
    "cold_cast": Degradation("colour_cast", (-0.2, -0.4, -0.6)),
    "square": Degradation("square", (30, 50)),
})

# The degraded probes of an ERC dataset (``evaluation.pairs.probe_photos``), on whole photos: (mild, strong).
PHOTO_PROTOCOL = Protocol(photo_scale, {
    "blur": Degradation("blur", (2.0, 8.0)),
    "motion": Degradation("motion", (12, 40)),
    "jpeg": Degradation("jpeg", (30, 4)),
    "noise": Degradation("noise", (10.0, 45.0)),
    "pixelate": Degradation("pixelate", (4, 14)),
    "downscale": Degradation("downscale", (3, 8)),
    "salt_and_pepper": Degradation("salt_and_pepper", (0.02, 0.12)),
    "gamma": Degradation("gamma", (1.8, 3.5)),
    "contrast": Degradation("contrast", (0.5, 0.15)),
    "disc": Degradation("disc", (70, 130)),
})
