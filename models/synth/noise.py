"""Cheap deterministic noise and smooth signals for the scene engine.

All randomness comes from generators made by `rng_for` from (seed, clip, tags): nothing global.
Value noise is a small random grid upsampled with cv2.resize; fractal noise sums octaves.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np


def rng_for(*keys: int | str) -> np.random.Generator:
    """A generator seeded from integers and string tags (strings hashed with CRC-32).

    Negative integers (e.g. the slot before frame 0) map to distinct values above 2**64.
    """
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    ints = [k if k >= 0 else (1 << 64) - k for k in ints]
    return np.random.default_rng(np.random.SeedSequence(ints))


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[float, float]) -> np.ndarray:
    """Smooth noise in [0, 1]-ish of `shape` (h, w) with about `cells` (rows, cols) features."""
    h, w = shape
    cy = max(2, int(round(cells[0])) + 1)
    cx = max(2, int(round(cells[1])) + 1)
    grid = rng.random((cy, cx), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fbm(rng: np.random.Generator, shape: tuple[int, int], cells: float | tuple[float, float],
        octaves: int = 4, gain: float = 0.5, lacunarity: float = 2.0) -> np.ndarray:
    """Fractal value noise, standardized to mean 0 and std 1 (float32).

    Octaves are summed on a small grid (each upsampled into the next), then one resize to shape.
    """
    h, w = shape
    cy, cx = (cells, cells) if np.isscalar(cells) else cells
    acc = None
    amp = 1.0
    for i in range(octaves):
        gy = min(h, max(2, int(round(cy * lacunarity ** i)) + 1))
        gx = min(w, max(2, int(round(cx * lacunarity ** i)) + 1))
        layer = rng.random((gy, gx), dtype=np.float32) * np.float32(amp)
        if acc is not None:
            layer += cv2.resize(acc, (gx, gy), interpolation=cv2.INTER_CUBIC)
        acc = layer
        amp *= gain
    out = cv2.resize(acc, (w, h), interpolation=cv2.INTER_CUBIC)
    sample = out[::4, ::4]
    out -= np.float32(sample.mean())
    out *= np.float32(1.0 / max(1e-6, float(sample.std())))
    return out


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) * (1.0 / (e1 - e0)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a downsampled copy (same look, much cheaper)."""
    if sigma <= 0.05:
        return a
    f = int(sigma // 3)
    if f < 2:
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = a.shape[:2]
    small = cv2.resize(a, (max(2, w // f), max(2, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def sparse_points(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
    """A float32 image with `count` single-pixel ones at random places."""
    h, w = shape
    img = np.zeros(shape, np.float32)
    if count > 0:
        ys = rng.integers(0, h, count)
        xs = rng.integers(0, w, count)
        img[ys, xs] = 1.0
    return img


def distance_to_points(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
    """Euclidean distance (px) from each pixel to the nearest of `count` random points."""
    pts = sparse_points(rng, shape, max(1, count))
    src = np.where(pts > 0, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(src, cv2.DIST_L2, 5)


class Wave:
    """A smooth bounded 1D signal: a sum of a few sinusoids with random periods and phases."""

    def __init__(self, rng: np.random.Generator, amplitude: float, period: tuple[float, float],
                 terms: int = 3):
        weights = rng.uniform(0.5, 1.0, terms)
        self.amp = amplitude * weights / weights.sum()
        self.freq = 2 * np.pi / rng.uniform(period[0], period[1], terms)
        self.phase = rng.uniform(0, 2 * np.pi, terms)

    def __call__(self, t: float) -> float:
        return float(np.sum(self.amp * np.sin(self.freq * t + self.phase)))

    def rate(self, t: float) -> float:
        """Derivative per frame."""
        return float(np.sum(self.amp * self.freq * np.cos(self.freq * t + self.phase)))


def slot_envelope(t: float, start: float, duration: float, ramp: float) -> float:
    """0 outside [start, start+duration], smooth ramps of `ramp` frames at both ends, 1 between."""
    if t <= start or t >= start + duration:
        return 0.0
    r = max(1.0, min(ramp, duration / 2))
    a = min((t - start) / r, (start + duration - t) / r, 1.0)
    return float(a * a * (3 - 2 * a))
