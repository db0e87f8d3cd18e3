"""Frame quality measures for choosing frames to label: field of view, sharpness, exposure, dHash.

All measures run on a grayscale copy scaled down to at most ANALYSIS_WIDTH pixels wide, so the
thresholds mean the same at 640x480 and at 1920x1080. They are pure functions of the pixels.

- Field of view: endoscope frames show a bright disc on a black surround. The FOV is the convex
  hull of the largest blob brighter than DARK; the whole frame when there is no such blob (a
  crop with no surround, or a frame too dark to tell).
- Sharpness: variance of the Laplacian inside the FOV shrunk by a margin, so that the FOV's own
  rim (a strong edge even in a blurred frame) does not count.
- Exposure: the fractions of FOV pixels darker than DARK and brighter than BRIGHT.
- Near-duplicates: a difference hash (dHash) of the FOV's bounding box; the distance between two
  frames is the fraction of hash bits that differ (0 = same picture, about 0.5 = unrelated).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 640
DARK = 20          # gray levels (0..255) at or below this are "dark"
BRIGHT = 245       # gray levels at or above this are "blown out"
MIN_FOV_SHARE = 0.15  # a bright blob smaller than this share of the frame is not a field of view
HASH_SIZE = 16     # dHash grid: HASH_SIZE x HASH_SIZE bits


@dataclass(frozen=True)
class FrameQuality:
    sharpness: float      # variance of the Laplacian inside the FOV
    dark: float           # share of FOV pixels <= DARK
    bright: float         # share of FOV pixels >= BRIGHT
    fov_share: float      # FOV area / frame area (1.0 when no surround was found)
    hash: np.ndarray      # HASH_SIZE*HASH_SIZE bools


def analysis_gray(rgb: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """RGB uint8 -> grayscale uint8, scaled down (never up) to at most `width` pixels wide."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if w > width:
        gray = cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return gray


def estimate_fov(gray: np.ndarray, dark: int = DARK) -> np.ndarray:
    """A uint8 mask (255 inside) of the field of view: hull of the largest bright blob, else all."""
    h, w = gray.shape
    bright = (gray > dark).astype(np.uint8)
    k = max(3, (min(h, w) // 100) | 1)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, cc, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    full = np.full((h, w), 255, np.uint8)
    if n < 2:
        return full
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < MIN_FOV_SHARE * h * w:
        return full
    points = cv2.findNonZero((cc == biggest).astype(np.uint8))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 255)
    return mask


def inner(mask: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """The mask shrunk by `margin` of the frame's short side (at least 2 px), away from the rim."""
    r = max(2, round(margin * min(mask.shape)))
    if mask.all():
        out = np.zeros_like(mask)
        out[r:-r, r:-r] = 255
        return out if out.any() else mask
    shrunk = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return shrunk if shrunk.any() else mask


def sharpness(gray: np.ndarray, mask: np.ndarray) -> float:
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    _, std = cv2.meanStdDev(lap, mask=mask)
    return float(std[0, 0] ** 2)


def exposure(gray: np.ndarray, mask: np.ndarray, dark: int = DARK, bright: int = BRIGHT) -> tuple[float, float]:
    hist = cv2.calcHist([gray], [0], mask, [256], [0, 256]).ravel()
    total = max(1.0, float(hist.sum()))
    return float(hist[:dark + 1].sum() / total), float(hist[bright:].sum() / total)


def dhash(gray: np.ndarray, mask: np.ndarray, size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash of the FOV's bounding box: signs of horizontal steps on a tiny thumbnail."""
    x, y, w, h = cv2.boundingRect(mask)
    crop = gray[y:y + h, x:x + w] if w and h else gray
    thumb = cv2.resize(crop, (size + 1, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    return (thumb[:, 1:] > thumb[:, :-1]).ravel()


def hash_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of differing bits between two hashes (0 = identical)."""
    return float(np.count_nonzero(a != b)) / a.size


def hash_distances(h: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """hash_distance from `h` to every row of `kept`."""
    return np.count_nonzero(kept != h, axis=1) / h.size


def nearest_distance(h: np.ndarray, kept: np.ndarray) -> float:
    """Smallest hash_distance from `h` to any row of `kept` (1.0 when `kept` is empty)."""
    return float(hash_distances(h, kept).min()) if len(kept) else 1.0


def measure(rgb: np.ndarray) -> FrameQuality:
    gray = analysis_gray(rgb)
    fov = estimate_fov(gray)
    core = inner(fov)
    dark, bright = exposure(gray, core)
    return FrameQuality(
        sharpness=sharpness(gray, core),
        dark=dark,
        bright=bright,
        fov_share=float(np.count_nonzero(fov)) / fov.size,
        hash=dhash(gray, fov),
    )
