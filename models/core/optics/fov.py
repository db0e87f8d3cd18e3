"""Finding the endoscope's circular field of view in a frame, cheaply, every frame if needed.

The picture of an endoscope is a bright disc on a black surround (with a notch, instruments
crossing the rim, dark tissue near the edge, text burned in by the tower, letterbox bars).
Two steps:
1. coarse, on a 192 px wide copy: threshold the surround, keep the largest bright region
   (after an opening that cuts thin text strokes off it), smallest enclosing circle;
2. fine, on the full frame: rim points along 180 rays at subpixel precision and a RANSAC
   circle through them (models/core/optics/circlefit.py), so the circle is exact to a fraction of a pixel
   and rays through instruments, dark tissue, the notch or text do not pull it.
A frame without a dark surround (a plain camera), or whose rim points do not agree on a
circle seen most of the way round, has no field of view: None.

The model then sees the circle's bounding square (as in training) and pixels outside the
circle are ignore. `FovTracker` re-detects every few frames and smooths the circle, so that a
steady scope gives a steady crop; a large jump (zoom, another scope) is taken at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.core.optics.circlefit import fit_circle_ransac, rim_points

DETECT_WIDTH = 192       # the coarse step runs on a copy this wide
DARK_LEVEL = 24          # surround is darker than this (0..255, brightest channel)
MIN_AREA_SHARE = 0.10    # a field of view covers at least this share of the frame
MIN_INLIER_SHARE = 0.45  # of the rays cast, this share must land on the fitted rim
MAX_GAP_DEG = 100.0      # and the rim must be seen all round but for gaps this wide (frame borders)


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
        """Boolean mask (size = (w, h) of a grid laid over `box`) of cells outside the circle.

        Pixel (x, y) is at integer coordinates (its center); a grid cell is tested at its center."""
        x, y, bw, bh = box
        w, h = size
        xs = x + (np.arange(w, dtype=np.float32) + 0.5) * (bw / w) - 0.5
        ys = y + (np.arange(h, dtype=np.float32) + 0.5) * (bh / h) - 0.5
        return ((xs[None, :] - self.cx) ** 2 + (ys[:, None] - self.cy) ** 2) > self.r ** 2


def coarse_fov(rgb: np.ndarray) -> Circle | None:
    """A rough circle (a few % of the radius) from the largest bright region, or None."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_WIDTH / w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    bright = (small.max(axis=2) > DARK_LEVEL).astype(np.uint8)
    if bright.mean() > 0.97:
        return None  # no surround: the picture fills the frame
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # thin text strokes off
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    if cv2.contourArea(largest) < MIN_AREA_SHARE * bright.size:
        return None
    (cx, cy), r = cv2.minEnclosingCircle(cv2.convexHull(largest))
    # The enclosing circle swells when text or a bar merged with the disc; a robust fit to the
    # outline does not (outline points on the text, an instrument or the frame border drop out).
    pts = largest[:, 0, :].astype(np.float64)
    fit = fit_circle_ransac(pts, np.arctan2(pts[:, 1] - cy, pts[:, 0] - cx), tol=1.5, rays=len(pts))
    if fit is not None and fit.inliers >= 0.3 * len(pts) and 0.2 * r < fit.r <= r:
        cx, cy, r = fit.cx, fit.cy, fit.r
    sx, sy = w / small.shape[1], h / small.shape[0]
    return Circle((cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5, r * max(sx, sy))


def detect_fov(rgb: np.ndarray) -> Circle | None:
    """The field-of-view circle of one frame (subpixel), or None when it has none."""
    coarse = coarse_fov(rgb)
    if coarse is None:
        return None
    circle = None
    for _ in range(2):  # a second pass from the refined circle when the coarse one was far off
        ref = circle or coarse
        pts, angles = rim_points(rgb, ref.cx, ref.cy, ref.r)
        fit = fit_circle_ransac(pts, angles, tol=max(1.0, 0.006 * ref.r), rays=180)
        if fit is None or fit.inliers < MIN_INLIER_SHARE * fit.rays or fit.coverage > MAX_GAP_DEG:
            return None
        if not 0.5 * coarse.r < fit.r < 1.5 * coarse.r:
            return None
        circle = Circle(fit.cx, fit.cy, fit.r)
        if abs(fit.r - ref.r) < 0.1 * ref.r and np.hypot(fit.cx - ref.cx, fit.cy - ref.cy) < 0.1 * ref.r:
            break
    return circle


class FovTracker:
    """Detect every `every` frames; smooth small moves, jump on big ones."""

    def __init__(self, every: int = 10, smoothing: float = 0.7, jump: float = 0.08):
        self.every, self.smoothing, self.jump = every, smoothing, jump
        self.circle: Circle | None = None
        self._count = 0

    @property
    def due(self) -> bool:
        """Does the next update() detect (and so need the frame)?"""
        return self._count % self.every == 0 or self.circle is None

    def update(self, rgb: np.ndarray | None) -> Circle | None:
        """The circle for the next frame; `rgb` may be None when no detection is `due`."""
        if self.due:
            if rgb is None:
                raise ValueError("FovTracker.update: a detection is due and needs the frame")
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
