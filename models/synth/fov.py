"""Field-of-view geometry: the scope circle in the output frame, its masks, rim and notch.

Pixel (x = column, y = row) is inside the field of view iff (x - cx)^2 + (y - cy)^2 <= r^2,
except the notch marker (a small triangle cut into the rim on wide frames), which is ignored
like the outside. The orange rim ring is drawn inside the circle, within RIM_WIDTH pixels of
the edge; its pixels keep their tissue labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RIM_WIDTH = 3.0        # output pixels (at most; about 1.5-2.5 px visible)
WIDE_ASPECT = 1.2
RENDER_CAP = 720       # largest internal render side; bigger frames are upscaled from it


@dataclass(frozen=True)
class Fov:
    width: int
    height: int
    cx: float
    cy: float
    r: float
    notch: tuple[float, float, float] | None   # (angle, depth px, half base px)

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the circle's bounding box clipped to the frame (render region)."""
        x0 = max(0, int(np.floor(self.cx - self.r)))
        y0 = max(0, int(np.floor(self.cy - self.r)))
        x1 = min(self.width, int(np.floor(self.cx + self.r)) + 1)
        y1 = min(self.height, int(np.floor(self.cy + self.r)) + 1)
        return x0, y0, x1, y1


def make_fov(rng: np.random.Generator, width: int, height: int) -> Fov:
    short, long_ = min(width, height), max(width, height)
    wide = long_ / short >= WIDE_ASPECT
    mx, my = (width - 1) / 2.0, (height - 1) / 2.0
    if wide:
        diameter = short * rng.uniform(0.74, 0.84)
        room = (short - diameter) / 2.0
        d_long = long_ * rng.uniform(-0.035, 0.035)
        d_short = rng.uniform(-0.35, 0.35) * room
        dx, dy = (d_long, d_short) if width >= height else (d_short, d_long)
        notch = None
        if rng.random() < 0.8:
            r = diameter / 2
            notch = (rng.uniform(0, 2 * np.pi), r * rng.uniform(0.03, 0.045), r * rng.uniform(0.025, 0.04))
    else:
        diameter = short * rng.uniform(0.95, 1.0)
        room = max(0.0, (short - diameter) / 2.0 - 0.5)
        lim = min(room, 0.012 * short)
        dx, dy = rng.uniform(-lim, lim, 2)
        notch = None
    return Fov(width, height, mx + float(dx), my + float(dy), diameter / 2.0, notch)


def fov_masks(fov: Fov) -> tuple[np.ndarray, np.ndarray]:
    """Over the render rect: (ignore uint8 255 outside/notch else 0, inside distance in px)."""
    x0, y0, x1, y1 = fov.rect
    xs = np.arange(x0, x1, dtype=np.float64) - fov.cx
    ys = np.arange(y0, y1, dtype=np.float64) - fov.cy
    d = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
    ignore = np.where(d <= fov.r, 0, 255).astype(np.uint8)
    if fov.notch is not None:
        ang, depth, half = fov.notch
        u = np.array([np.cos(ang), np.sin(ang)])
        v = np.array([-u[1], u[0]])
        c = np.array([fov.cx - x0, fov.cy - y0])
        base = c + u * (fov.r + 2.0)
        tri = np.array([base + v * half, base - v * half, c + u * (fov.r - depth)])
        cv2.fillPoly(ignore, [np.round(tri * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
    return ignore, d.astype(np.float32)

