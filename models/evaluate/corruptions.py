"""Corrupted renderings of a frame, for `gate-check --corrupt`: does the trust gate flag the frames
the model gets wrong?

Five families at two severities, each beyond what training augmentation shows the network
(models/augment.py: Gaussian blur sigma up to 2 px at the training crop, brightness and contrast
+-25 %, gamma 0.8-1.25, nothing like smoke or blood):

    blur           heavy Gaussian defocus: sigma 2 % / 4 % of the image's short side
    smoke          a bright, low-contrast haze veil whose density varies at low frequency
    blood          dark red fluid over 45 % / 70 % of the view, its shape a low-frequency field
    overexposure   x2.2 / x3.5 gain, clipped (highlights blown out)
    underexposure  x0.25 / x0.1 gain (detail sinks into the dark)

Every function takes and returns an HxWx3 uint8 RGB image and draws its random shape from the
generator it is given: `corrupt(rgb, family, severity, seed)` is the same bytes for the same
seed. Smoke and blood are drawn inside `inside` (the field of view, when known): the scope's
black surround stays black, as it does in the OR.
"""
from __future__ import annotations

import zlib
from typing import Callable

import cv2
import numpy as np

SEVERITIES = (1, 2)
CLEAN = ("none", 0)          # the uncorrupted rendering, in tables and CSVs
SMOKE = np.array([226, 226, 230], np.float32)   # a slightly bluish white
BLOOD = np.array([92, 6, 10], np.float32)       # venous red, dark


def blur(rgb: np.ndarray, severity: int, rng: np.random.Generator, inside: np.ndarray | None = None) -> np.ndarray:
    sigma = (0.02, 0.04)[severity - 1] * min(rgb.shape[:2])
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def smoke(rgb: np.ndarray, severity: int, rng: np.random.Generator, inside: np.ndarray | None = None) -> np.ndarray:
    strength = (0.55, 0.8)[severity - 1]
    density = 0.55 + 0.45 * low_frequency(rgb.shape[:2], rng)      # never clear, thick in places
    alpha = strength * density * _weight(inside, rgb.shape[:2])
    return _blend(rgb, SMOKE, alpha)


def blood(rgb: np.ndarray, severity: int, rng: np.random.Generator, inside: np.ndarray | None = None) -> np.ndarray:
    coverage = (0.45, 0.7)[severity - 1]
    field = low_frequency(rgb.shape[:2], rng)
    weight = _weight(inside, rgb.shape[:2])
    level = np.quantile(field[weight > 0.5], 1 - coverage) if (weight > 0.5).any() else 1.0
    edge = max(1.0, 0.01 * min(rgb.shape[:2]))
    pool = cv2.GaussianBlur((field >= level).astype(np.float32), (0, 0), edge)   # soft rim
    shade = 0.75 + 0.35 * low_frequency(rgb.shape[:2], rng, cells=6)              # thicker, darker in places
    color = BLOOD[None, None, :] * shade[..., None]
    return _blend(rgb, color, 0.93 * pool * weight)


def overexposure(rgb: np.ndarray, severity: int, rng: np.random.Generator, inside: np.ndarray | None = None
                 ) -> np.ndarray:
    return _gain(rgb, (2.2, 3.5)[severity - 1])


def underexposure(rgb: np.ndarray, severity: int, rng: np.random.Generator, inside: np.ndarray | None = None
                  ) -> np.ndarray:
    return _gain(rgb, (0.25, 0.1)[severity - 1])


FAMILIES: dict[str, Callable] = {"blur": blur, "smoke": smoke, "blood": blood, "overexposure": overexposure,
                                 "underexposure": underexposure}


def renderings() -> list[tuple[str, int]]:
    """(family, severity) of every rendering gate-check makes of an image, the clean one first."""
    return [CLEAN] + [(f, s) for f in FAMILIES for s in SEVERITIES]


def corrupt(rgb: np.ndarray, family: str, severity: int, seed: int, inside: np.ndarray | None = None) -> np.ndarray:
    """One rendering of `rgb` (a new array; the clean one is `rgb` itself), seeded."""
    if (family, severity) == CLEAN:
        return rgb
    if family not in FAMILIES or severity not in SEVERITIES:
        raise ValueError(f"unknown corruption {family!r} at severity {severity!r}")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family), severity])
    return np.ascontiguousarray(FAMILIES[family](rgb, severity, rng, inside))


def image_seed(name: str) -> int:
    """A seed from an image's name: the same in every process and run (unlike hash())."""
    return zlib.crc32(name.encode("utf-8", "backslashreplace"))


def low_frequency(shape: tuple[int, int], rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """A smooth random field in [0, 1] over `shape`: a (cells+1)^2 grid of uniform values, bicubic."""
    h, w = shape
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.zeros(shape, np.float32)


def _weight(inside: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if inside is None:
        return np.ones(shape, np.float32)
    if inside.shape != tuple(shape):
        raise ValueError(f"inside mask {inside.shape} does not match the image {shape}")
    return inside.astype(np.float32)


def _blend(rgb: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    out = rgb.astype(np.float32) * (1 - a) + np.broadcast_to(color, rgb.shape) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _gain(rgb: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.rint(rgb.astype(np.float32) * gain), 0, 255).astype(np.uint8)
