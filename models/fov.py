"""Finding the endoscope's circular field of view in a frame, cheaply, every frame if needed.

The picture of an endoscope is a bright disc on a black surround (with a notch, instruments
crossing the rim, dark tissue near the edge). On a small grayscale copy: threshold the
surround, keep the largest bright region, fit the smallest enclosing circle. The model then
sees the circle's bounding square (as in training) and pixels outside the circle are ignore.

`FovTracker` re-detects every few frames and smooths the circle, so that a steady scope gives
a steady crop; a large jump (zoom, another scope) is taken at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DETECT_WIDTH = 192       # detection runs on a copy this wide
DARK_LEVEL = 24          # surround is darker than this (0..255)
MIN_AREA_SHARE = 0.10    # a field of view covers at least this share of the frame


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The circle's bounding square, clipped to the frame: (x, y, w, h)."""
        x0 = max(0, int(np.floor(self.cx - self.r)))
        y0 = max(0, int(np.floor(self.cy - self.r)))
        x1 = min(width, int(np.ceil(self.cx + self.r)))
        y1 = min(height, int(np.ceil(self.cy + self.r)))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    def outside(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
        """Boolean mask (size = (w, h) of a grid laid over `box`) of cells outside the circle."""
        x, y, bw, bh = box
        w, h = size
        xs = x + (np.arange(w, dtype=np.float32) + 0.5) * (bw / w)
        ys = y + (np.arange(h, dtype=np.float32) + 0.5) * (bh / h)
        return ((xs[None, :] - self.cx) ** 2 + (ys[:, None] - self.cy) ** 2) > self.r ** 2


def detect_fov(rgb: np.ndarray) -> Circle | None:
    """The field-of-view circle of one frame, or None when the frame has no dark surround."""
    h, w = rgb.shape[:2]
    scale = DETECT_WIDTH / w
    small = cv2.resize(rgb, (DETECT_WIDTH, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    bright = (gray > DARK_LEVEL).astype(np.uint8)
    if bright.mean() > 0.97:
        return None  # no surround: the picture fills the frame
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    if cv2.contourArea(largest) < MIN_AREA_SHARE * bright.size:
        return None
    (cx, cy), r = cv2.minEnclosingCircle(cv2.convexHull(largest))
    return Circle((cx + 0.5) / scale - 0.5, (cy + 0.5) / scale - 0.5, r / scale)


class FovTracker:
    """Detect every `every` frames; smooth small moves, jump on big ones."""

    def __init__(self, every: int = 10, smoothing: float = 0.7, jump: float = 0.08):
        self.every, self.smoothing, self.jump = every, smoothing, jump
        self.circle: Circle | None = None
        self._count = 0

    def update(self, rgb: np.ndarray) -> Circle | None:
        if self._count % self.every == 0 or self.circle is None:
            found = detect_fov(rgb)
            if found is None or self.circle is None:
                self.circle = found
            else:
                c = self.circle
                moved = np.hypot(found.cx - c.cx, found.cy - c.cy) + abs(found.r - c.r)
                if moved > self.jump * c.r:
                    self.circle = found
                else:
                    a = self.smoothing
                    self.circle = Circle(a * c.cx + (1 - a) * found.cx, a * c.cy + (1 - a) * found.cy,
                                         a * c.r + (1 - a) * found.r)
        self._count += 1
        return self.circle
