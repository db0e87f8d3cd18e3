"""Subpixel rim points of a circular field of view, and a robust circle through them.

Rays are cast from an approximate center across the approximate rim; along each ray the rim is
where the picture drops to the dark surround and stays dark for a while (so bright text burned
into the surround further out is not taken for the rim). The drop is located at subpixel
precision (the crossing of the level halfway between the inside and the surround). A RANSAC
fit then keeps the rays that agree on one circle: rays through an instrument crossing the rim,
dark tissue at the edge, the notch marker or a text overlay are outliers and drop out.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CircleFit:
    cx: float
    cy: float
    r: float
    inliers: int      # rim points on the circle
    rays: int         # rays cast
    coverage: float   # largest angle (degrees) without an inlier: small = rim seen all around


def sample_rays(rgb: np.ndarray, cx: float, cy: float, angles: np.ndarray, radii: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Brightest channel along rays: (len(angles), len(radii)) float32 levels, and a mask of the
    samples that lie inside the frame (outside ones read 0)."""
    h, w = rgb.shape[:2]
    xs = (cx + np.cos(angles)[:, None] * radii[None, :]).astype(np.float32)
    ys = (cy + np.sin(angles)[:, None] * radii[None, :]).astype(np.float32)
    samples = cv2.remap(rgb, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if samples.ndim == 3:
        samples = np.maximum(np.maximum(samples[..., 0], samples[..., 1]), samples[..., 2])
    level = samples.astype(np.float32)
    inside = (xs >= 0) & (ys >= 0) & (xs <= w - 1) & (ys <= h - 1)
    return level, inside


def rim_points(rgb: np.ndarray, cx: float, cy: float, r0: float, rays: int = 180,
               span: tuple[float, float] = (0.7, 1.3), min_dark: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Subpixel rim points (N, 2) in frame pixels and their ray angles (N,), searched between
    span[0] * r0 and span[1] * r0 from (cx, cy)."""
    angles = np.arange(rays) * (2 * np.pi / rays)
    r_lo, r_hi = span[0] * r0, span[1] * r0
    step = max(0.5, (r_hi - r_lo) / 320)
    radii = r_lo + step * np.arange(int((r_hi - r_lo) / step) + 1)
    level, inside = sample_rays(rgb, cx, cy, angles, radii)
    level = cv2.GaussianBlur(level, (5, 1), 0.8)  # along the rays only
    outer = inside & (radii[None, :] > 1.12 * r0)
    surround = float(np.median(level[outer])) if outer.sum() > 20 else 0.0
    inner = inside & (radii[None, :] < 0.9 * r0)
    picture = float(np.median(level[inner])) if inner.any() else 255.0
    thr = max(float(min_dark), surround + max(8.0, 0.25 * (picture - surround)))
    dark = level < thr
    n = dark.shape[1]
    k = max(3, int(round(0.03 * r0 / step)))      # stays dark over 3% of the radius
    padded = np.concatenate([dark, np.repeat(dark[:, -1:], k, axis=1)], axis=1)
    cs = np.concatenate([np.zeros((dark.shape[0], 1), np.int32), np.cumsum(padded, axis=1, dtype=np.int32)], axis=1)
    dark_run = (cs[:, k:k + n] - cs[:, :n]) == k   # samples i..i+k-1 all dark
    start = np.zeros_like(dark)
    start[:, 1:] = dark_run[:, 1:] & ~dark[:, :-1]
    found = start.any(axis=1)
    idx = np.argmax(start, axis=1)
    ok = found & (idx >= 8) & (idx + 2 < n)
    ok[ok] &= inside[np.flatnonzero(ok), idx[ok] + 2]  # where the ray leaves the frame, the circle is cut
    rays_ok = np.flatnonzero(ok)
    i = idx[rays_ok]
    window = level[rays_ok[:, None], i[:, None] + np.arange(-8, 1)[None, :]]   # 8 samples before the drop + it
    half = 0.5 * (window[:, 2:8].max(axis=1) + surround)                       # halfway picture -> surround
    above = window[:, :-1] >= half[:, None]
    has = above.any(axis=1) & (window[:, -1] < half)
    j = 7 - np.argmax(above[:, ::-1], axis=1)                                  # last sample above half
    rows = np.arange(len(i))
    hi, lo = window[rows, j], window[rows, np.minimum(j + 1, 8)]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(hi > lo, (hi - half) / (hi - lo), 0.0)
    t = (i - 8 + j + np.clip(frac, 0, 1))[has]
    ang = angles[rays_ok[has]]
    rad = r_lo + t * step
    points = np.stack([cx + np.cos(ang) * rad, cy + np.sin(ang) * rad], axis=1)
    return points.astype(np.float64), ang.astype(np.float64)


def fit_circle_lsq(pts: np.ndarray, init: tuple[float, float, float] | None = None, iters: int = 8
                   ) -> tuple[float, float, float]:
    """Geometric least-squares circle (algebraic start, then Gauss-Newton)."""
    if init is None:
        x, y = pts[:, 0], pts[:, 1]
        a = np.stack([x, y, np.ones_like(x)], axis=1)
        d, e, f = np.linalg.lstsq(a, -(x * x + y * y), rcond=None)[0]
        cx, cy = -d / 2, -e / 2
        init = (cx, cy, float(np.sqrt(max(cx * cx + cy * cy - f, 1e-9))))
    c = np.asarray(init, np.float64)
    for _ in range(iters):
        dx, dy = pts[:, 0] - c[0], pts[:, 1] - c[1]
        dist = np.maximum(np.hypot(dx, dy), 1e-9)
        res = dist - c[2]
        jac = np.stack([-dx / dist, -dy / dist, -np.ones_like(dist)], axis=1)
        delta = np.linalg.lstsq(jac, -res, rcond=None)[0]
        c += delta
        if np.abs(delta).max() < 1e-4:
            break
    return float(c[0]), float(c[1]), float(c[2])


def fit_circle_ransac(pts: np.ndarray, angles: np.ndarray, tol: float, rays: int,
                      trials: int = 128, seed: int = 0) -> CircleFit | None:
    """The circle most rim points agree with (within tol px), refined on its inliers."""
    m = len(pts)
    if m < 8:
        return None
    rng = np.random.default_rng(seed)
    tri = rng.integers(0, m, (trials, 3))
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    ok = np.abs(d) > 1e-6
    a2, b2, c2 = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (a2 * (b[:, 1] - c[:, 1]) + b2 * (c[:, 1] - a[:, 1]) + c2 * (a[:, 1] - b[:, 1])) / d
        uy = (a2 * (c[:, 0] - b[:, 0]) + b2 * (a[:, 0] - c[:, 0]) + c2 * (b[:, 0] - a[:, 0])) / d
    ux, uy = ux[ok], uy[ok]
    if not len(ux):
        return None
    ur = np.hypot(a[ok, 0] - ux, a[ok, 1] - uy)
    p32 = pts.astype(np.float32)
    dist = np.abs(np.hypot(p32[None, :, 0] - ux[:, None].astype(np.float32),
                           p32[None, :, 1] - uy[:, None].astype(np.float32)) - ur[:, None].astype(np.float32))
    best = int(np.argmax((dist < tol).sum(axis=1)))
    inl = dist[best] < tol
    circle = (float(ux[best]), float(uy[best]), float(ur[best]))
    for _ in range(3):
        if inl.sum() < 5:
            return None
        circle = fit_circle_lsq(pts[inl], circle)
        new = np.abs(np.hypot(pts[:, 0] - circle[0], pts[:, 1] - circle[1]) - circle[2]) < tol
        if np.array_equal(new, inl):
            break
        inl = new
    return CircleFit(*circle, inliers=int(inl.sum()), rays=rays, coverage=_largest_gap(angles[inl]))


def _largest_gap(angles: np.ndarray) -> float:
    if len(angles) < 2:
        return 360.0
    s = np.sort(np.mod(angles, 2 * np.pi))
    gaps = np.diff(np.concatenate([s, s[:1] + 2 * np.pi]))
    return float(np.degrees(gaps.max()))
