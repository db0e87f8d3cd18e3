"""Checkerboards photographed through a known lens, for testing lens calibration.

Each output pixel is traced back through the lens (OpenCV's own undistortPoints for the true
model), onto the board plane (a homography for a plane), and takes the board's color there,
at 3x3 supersampling; then a little blur, vignetting and noise. The true model is therefore
exactly the one the calibration has to recover.
"""
from __future__ import annotations

import cv2
import numpy as np

from calibration.lens import board_points
from models.core.optics.lens import LensModel, undistort_points

SUPERSAMPLE = 3

# An endoscope-like fisheye (about 140 degrees across the width) and a barrel-distorting
# rational lens, both for 640x480 frames.
FISHEYE = LensModel("fisheye", (640, 480), ((250.0, 0.0, 322.5), (0.0, 251.0, 237.0), (0.0, 0.0, 1.0)),
                    (0.06, -0.02, 0.004, -0.0008))
RATIONAL = LensModel("rational", (640, 480), ((420.0, 0.0, 318.0), (0.0, 421.0, 243.5), (0.0, 0.0, 1.0)),
                     (-0.28, 0.09, 0.0008, -0.0006, 0.0, 0.05, 0.0, 0.02))


class BoardCamera:
    """Renders boards through one lens (the per-pixel ray directions are computed once)."""

    def __init__(self, lens: LensModel):
        self.lens = lens
        self.size = lens.image_size
        self.k, self.d = lens.matrices(self.size)
        w, h = self.size
        s = SUPERSAMPLE
        xs = (np.arange(w * s) + 0.5) / s - 0.5
        ys = (np.arange(h * s) + 0.5) / s - 0.5
        mx, my = np.meshgrid(xs, ys)
        und = undistort_points(np.stack([mx.ravel(), my.ravel()], 1), lens.model, self.k, self.d)
        self.rays = und.reshape(h * s, w * s, 2)      # ideal normalized coordinates of each subpixel

    def project(self, obj: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
        if self.lens.model == "fisheye":
            pts, _ = cv2.fisheye.projectPoints(obj.reshape(-1, 1, 3), rvec, tvec, self.k, self.d)
        else:
            pts, _ = cv2.projectPoints(obj, rvec, tvec, self.k, self.d)
        return pts.reshape(-1, 2)

    def render(self, pattern: tuple[int, int], rvec: np.ndarray, tvec: np.ndarray, rng: np.random.Generator,
               square: float = 1.0) -> np.ndarray:
        cols, rows = pattern
        r, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
        hom = np.column_stack([r[:, 0], r[:, 1], np.asarray(tvec, np.float64).ravel()])
        inv = np.linalg.inv(hom)
        x, y = self.rays[..., 0], self.rays[..., 1]
        bx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
        by = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
        bw = inv[2, 0] * x + inv[2, 1] * y + inv[2, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = bx / bw / square, by / bw / square
        front = bw > 0                              # the ray meets the plane in front of the camera
        squares = (u >= -1) & (u < cols) & (v >= -1) & (v < rows)
        paper = (u >= -2) & (u < cols + 1) & (v >= -2) & (v < rows + 1)
        black = squares & ((np.floor(u) + np.floor(v)) % 2 == 0)
        img = np.full(u.shape, 70.0, np.float32)    # the room behind the board
        img[front & paper] = 225.0
        img[front & black] = 25.0
        img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        w, h = self.size
        yy, xx = np.mgrid[0:h, 0:w]
        vignette = 1 - 0.35 * (((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.25 * (w * w + h * h)))
        img = cv2.GaussianBlur(img * vignette.astype(np.float32), (0, 0), 0.6)
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)
        return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)

    def views(self, pattern: tuple[int, int], n: int, seed: int = 0, margin: float = 12.0):
        """n (image, rvec, tvec) with the whole board inside the frame, at varied tilts and places."""
        rng = np.random.default_rng(seed)
        obj = board_points(pattern)
        center = obj.mean(axis=0)
        w, h = self.size
        out = []
        while len(out) < n:
            rvec = np.radians(rng.uniform([-40, -40, -25], [40, 40, 25]))
            r, _ = cv2.Rodrigues(rvec)
            dist = rng.uniform(0.9, 1.6) * max(pattern)
            t = np.array([rng.uniform(-0.9, 0.9) * dist * 0.6, rng.uniform(-0.6, 0.6) * dist * 0.6, dist]) - r @ center
            pts = self.project(obj, rvec, t)
            cam = (r @ obj.T).T + t
            if (cam[:, 2] <= 0.1).any() or not np.isfinite(pts).all():
                continue
            if pts[:, 0].min() < margin or pts[:, 1].min() < margin or pts[:, 0].max() > w - margin or pts[:, 1].max() > h - margin:
                continue
            out.append((self.render(pattern, rvec, t, rng), rvec, t))
        return out


def mapping_error(true: LensModel, found: LensModel, corners: np.ndarray) -> float:
    """Largest distance (pixels) between where the two models put the same ray, over the region
    of the frame the boards covered (the convex hull of all their corners): there the
    calibration has data; beyond it, any model only extrapolates."""
    from models.core.optics.lens import Undistorter

    size = true.image_size
    w, h = size
    mx, my = np.meshgrid(np.arange(0, w, 8.0), np.arange(0, h, 8.0))
    grid = np.stack([mx.ravel(), my.ravel()], 1)
    hull = cv2.convexHull(corners.reshape(-1, 1, 2).astype(np.float32))
    inside = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in grid])
    raw = grid[inside]
    a, b = Undistorter(true, size), Undistorter(found, size)
    und = a.to_undistorted(raw)                                   # each pixel's ray, by the true model
    xn = (und - a.new_k[:2, 2]) / np.diag(a.new_k)[:2]
    rays = np.column_stack([xn, np.ones(len(xn))])
    if found.model == "fisheye":
        back, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), b.k, b.d)
    else:
        back, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), b.k, b.d)
    return float(np.hypot(*(back.reshape(-1, 2) - raw).T).max())
