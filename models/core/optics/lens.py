"""Lens distortion of an endoscope and undoing it: OpenCV's fisheye model or its rational model.

A `LensModel` is what `endospine-calibrate lens` measured (camera matrix and distortion for
frames of `image_size`). An `Undistorter` serves one frame size: the remap that undistorts a
frame (the model's view), and point mappings both ways, so that a mask computed on the
undistorted view is drawn back on the frame the surgeon sees (which stays as the tower shows it).

A fitted distortion polynomial is only trustworthy where the calibration had data: beyond the
farthest board corner (`valid_radius`) it extrapolates and can fold back on itself (a second
ray landing on the same pixel). The undistorter therefore uses the model only within that
radius (and within the range where it is monotonic, and 75 degrees off axis); outside it the
undistorted view is black
and masks are ignore. `balance` scales the undistorted view: 1 keeps every pixel of that valid
region in the frame, 0 keeps the scale of the image center (the periphery is cut).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MODELS = {"fisheye": 4, "rational": 8}   # model -> number of distortion coefficients
MAX_FRAME_SIZE = (8192, 4352)             # the video sources' limit (models.core.sources.video.MAX_SIZE): a side
                                          # up to 8192, at most this many pixels (portrait images too)
FOCAL_PX = (1.0, 1e5)                     # a focal length outside this is a typing error, not a lens
MAX_COEFFICIENT = 1e3                     # |k|: fitted coefficients are below 10 (rational: below 100)
COARSE_STEP = 4                           # the raw -> undistorted lookup is kept at 1/4 resolution
MAX_IDEAL_RADIUS = float(np.tan(np.radians(75)))  # a pinhole (undistorted) view stretches rays beyond 75 deg
                                                   # off axis by 1/cos^2 > 15x: not worth showing
_ITERATE = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)  # OpenCV's default 5 steps leave
                                                                           # tenths of a pixel at the rim


@dataclass(frozen=True)
class LensModel:
    model: str                                   # fisheye | rational
    image_size: tuple[int, int]                  # (width, height) of the frames it was measured on
    camera_matrix: tuple[tuple[float, ...], ...] # 3x3
    distortion: tuple[float, ...]                # fisheye: k1..k4; rational: k1 k2 p1 p2 k3 k4 k5 k6
    balance: float = 1.0
    undistort: bool = True                       # apply it in the app and the pipeline
    rms_px: float | None = None                  # reprojection error of the calibration
    valid_radius: float | None = None            # px from the principal point that the boards covered
    measured: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: must be one of {', '.join(MODELS)}, got {self.model!r}")
        if not frame_size_ok(self.image_size):
            raise ValueError(f"image_size: expected {frame_size_rule()}, got {_shown(self.image_size)}")
        w, h = self.image_size
        k = _floats(self.camera_matrix)
        if k is None or k.shape != (3, 3) or k[1, 0] != 0 or tuple(k[2]) != (0, 0, 1):
            raise ValueError("camera_matrix: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "
                             f"got {_shown(self.camera_matrix)}")
        lo, hi = FOCAL_PX
        if not (lo <= k[0, 0] <= hi and lo <= k[1, 1] <= hi):
            raise ValueError(f"camera_matrix: focal lengths fx, fy must be in {lo:g}..{hi:g} pixels, "
                             f"got {k[0, 0]:g}, {k[1, 1]:g}")
        if not (0.1 * w <= k[0, 2] <= 0.9 * w and 0.1 * h <= k[1, 2] <= 0.9 * h) or abs(k[0, 1]) > k[0, 0]:
            raise ValueError(f"camera_matrix: the principal point ({k[0, 2]:g}, {k[1, 2]:g}) must lie in the middle "
                             f"80 % of the {w}x{h} frame and the skew |k01| be at most fx")
        d = _floats(self.distortion)
        if d is None or d.shape != (MODELS[self.model],):
            raise ValueError(f"distortion: the {self.model} model has {MODELS[self.model]} coefficients, "
                             f"got {_shown(self.distortion)}")
        if np.abs(d).max() > MAX_COEFFICIENT:
            raise ValueError(f"distortion: coefficients must be within +-{MAX_COEFFICIENT:g}, got {_shown(self.distortion)}")
        if not _number_in(self.balance, 0.0, 1.0):
            raise ValueError(f"balance: must be in 0..1, got {self.balance!r}")
        if self.rms_px is not None and not _number_in(self.rms_px, 0.0, 1e3):
            raise ValueError(f"rms_px: must be a number of pixels in 0..1000, got {self.rms_px!r}")
        if self.valid_radius is not None and not _number_in(self.valid_radius, 1.0, 4.0 * max(w, h)):
            raise ValueError(f"valid_radius: must be a number of pixels in 1..{4 * max(w, h)}, got {self.valid_radius!r}")

    def matrices(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(K, D) for frames of `size`: the camera matrix scaled when the frames were resized."""
        k = np.asarray(self.camera_matrix, np.float64).copy()
        sx, sy = size[0] / self.image_size[0], size[1] / self.image_size[1]
        k[0] *= sx
        k[1] *= sy
        d = np.asarray(self.distortion, np.float64)
        return k, (d.reshape(4, 1) if self.model == "fisheye" else d.reshape(1, -1))

    def fits(self, size: tuple[int, int]) -> bool:
        """True if frames of `size` are the calibrated frames, possibly resized (same aspect)."""
        w, h = self.image_size
        return abs(size[0] / size[1] - w / h) < 0.01 * (w / h)

    def radial(self, rho: np.ndarray) -> np.ndarray:
        """Distorted radius (normalized) of ideal rays at normalized radius rho (tangential terms aside)."""
        d = np.asarray(self.distortion, np.float64)
        if self.model == "fisheye":
            t = np.arctan(rho)
            return t * (1 + d[0] * t ** 2 + d[1] * t ** 4 + d[2] * t ** 6 + d[3] * t ** 8)
        r2 = rho ** 2
        return rho * (1 + d[0] * r2 + d[1] * r2 ** 2 + d[4] * r2 ** 3) / (1 + d[5] * r2 + d[6] * r2 ** 2 + d[7] * r2 ** 3)


def frame_size_ok(size) -> bool:
    """[width, height]: whole numbers 16..8192, at most the pixels of the video sources' limit."""
    try:
        w, h = size
    except (TypeError, ValueError):
        return False
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (w, h)) and \
        16 <= min(w, h) and max(w, h) <= MAX_FRAME_SIZE[0] and w * h <= MAX_FRAME_SIZE[0] * MAX_FRAME_SIZE[1]


def frame_size_rule() -> str:
    return f"[width, height] of whole numbers in 16..{MAX_FRAME_SIZE[0]}, at most {MAX_FRAME_SIZE[0]}x{MAX_FRAME_SIZE[1]} pixels"


def _floats(values) -> np.ndarray | None:
    """Finite numbers as a float array, or None (text, booleans, NaN, infinity, ragged lists)."""
    try:
        a = np.asarray(values, np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    flat = np.asarray(values, object).ravel() if a.size else []
    if any(isinstance(v, (bool, np.bool_)) for v in flat) or not np.isfinite(a).all():
        return None
    return a


def _number_in(v, low: float, high: float) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.number)) and low <= v <= high


def _shown(v) -> str:
    text = repr(list(v) if isinstance(v, tuple) else v)
    return text if len(text) <= 60 else text[:57] + "..."


class Undistorter:
    """Undistortion for one frame size (maps built once)."""

    def __init__(self, lens: LensModel, size: tuple[int, int]):
        self.lens, self.size = lens, (int(size[0]), int(size[1]))
        self.k, self.d = lens.matrices(self.size)
        self.rho_valid = self._valid_ideal_radius()
        self.new_k = self._new_camera_matrix()
        w, h = self.size
        if lens.model == "fisheye":
            mx, my = cv2.fisheye.initUndistortRectifyMap(self.k, self.d, np.eye(3), self.new_k, self.size, cv2.CV_32FC1)
        else:
            mx, my = cv2.initUndistortRectifyMap(self.k, self.d, None, self.new_k, self.size, cv2.CV_32FC1)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        beyond = self._ideal_radius(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(h, w) > self.rho_valid
        mx[beyond] = my[beyond] = -1.0                          # no trustworthy pixel there: black
        self._maps = cv2.convertMaps(mx, my, cv2.CV_16SC2)
        self._coarse: tuple[np.ndarray, np.ndarray] | None = None

    # -- images ------------------------------------------------------------------------------
    def frame(self, rgb: np.ndarray) -> np.ndarray:
        return cv2.remap(rgb, *self._maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def region(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Only `box` of the undistorted frame: the same pixels as frame(rgb) cut to box, for
        less work (the model needs the field of view's square, not the whole frame)."""
        x, y, w, h = box
        return cv2.remap(rgb, self._maps[0][y:y + h, x:x + w], self._maps[1][y:y + h, x:x + w], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def labels(self, labels: np.ndarray, fill: int = 255) -> np.ndarray:
        return cv2.remap(labels, *self._maps, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)

    # -- points ------------------------------------------------------------------------------
    def to_undistorted(self, pts: np.ndarray) -> np.ndarray:
        """Raw frame pixels (N, 2) -> undistorted frame pixels (N, 2)."""
        return undistort_points(pts, self.lens.model, self.k, self.d, self.new_k)

    def to_raw(self, pts: np.ndarray) -> np.ndarray:
        """Undistorted frame pixels (N, 2) -> raw frame pixels (N, 2)."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        xn = (p[:, 0] - self.new_k[0, 2]) / self.new_k[0, 0]
        yn = (p[:, 1] - self.new_k[1, 2]) / self.new_k[1, 1]
        if self.lens.model == "fisheye":
            out = cv2.fisheye.distortPoints(np.stack([xn, yn], 1).reshape(-1, 1, 2), self.k, self.d)
        else:
            obj = np.stack([xn, yn, np.ones_like(xn)], 1).reshape(-1, 1, 3)
            out, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), self.k, self.d)
        return out.reshape(-1, 2)

    def grid_to_undistorted(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted coordinates (x, y), each (h, w) float32, of the cell centers of a w x h
        grid laid over `box` of the raw frame (from a 1/4-resolution lookup built once); cells
        beyond the model's valid region get a far-away coordinate (outside everything)."""
        if self._coarse is None:
            self._coarse = self._build_coarse()
        x, y, bw, bh = box
        w, h = size
        gx = (x + (np.arange(w, dtype=np.float32) + 0.5) * (bw / w) - 0.5) / COARSE_STEP
        gy = (y + (np.arange(h, dtype=np.float32) + 0.5) * (bh / h) - 0.5) / COARSE_STEP
        mx, my = np.meshgrid(gx, gy)
        ux = cv2.remap(self._coarse[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        uy = cv2.remap(self._coarse[1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return ux, uy

    def raw_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """The raw-frame bounding box of an undistorted-frame box (its valid part; clipped to the frame)."""
        x, y, bw, bh = box
        t = np.linspace(0, 1, 65)
        gx, gy = np.meshgrid(x + t * bw, y + t * bh)
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
        pts = pts[self._ideal_radius(pts) <= self.rho_valid]
        w, h = self.size
        if not len(pts):
            return 0, 0, w, h
        raw = self.to_raw(pts)
        x0, y0 = np.clip(np.floor(raw.min(axis=0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(raw.max(axis=0)).astype(int), 1, [w, h])
        return int(x0), int(y0), int(max(1, x1 - x0)), int(max(1, y1 - y0))

    # -- where the model holds -----------------------------------------------------------------
    def _ideal_radius(self, pts: np.ndarray) -> np.ndarray:
        """Normalized ideal radius of undistorted-frame pixels."""
        return np.hypot((pts[:, 0] - self.new_k[0, 2]) / self.new_k[0, 0], (pts[:, 1] - self.new_k[1, 2]) / self.new_k[1, 1])

    def _valid_ideal_radius(self) -> float:
        """The largest ideal radius the model may be used for: where it stays monotonic, within
        the calibrated radius, within the frame, within 75 degrees off axis."""
        w, h = self.size
        f = float(np.sqrt(self.k[0, 0] * self.k[1, 1]))
        cx, cy = self.k[0, 2], self.k[1, 2]
        corner = max(np.hypot(x - cx, y - cy) for x in (0, w - 1) for y in (0, h - 1)) / f
        limit = corner
        if self.lens.valid_radius is not None:
            limit = min(limit, self.lens.valid_radius * w / self.lens.image_size[0] / f)
        rho = np.linspace(0, MAX_IDEAL_RADIUS, 8001)[1:]
        rd = self.lens.radial(rho)
        bad = np.flatnonzero((np.diff(rd) <= 0) | ~np.isfinite(rd[1:]))
        mono = len(rho) - 1 if not len(bad) else int(bad[0])     # last index where it still increases
        if rd[mono] < limit:
            return float(rho[mono])
        return float(np.interp(limit, rd[:mono + 1], rho[:mono + 1]))

    def _new_camera_matrix(self) -> np.ndarray:
        """K with its focal scaled: 1 at balance 0; at balance 1 small enough that every ideal
        ray of the valid region lands in the frame."""
        w, h = self.size
        fx, fy, cx, cy = self.k[0, 0], self.k[1, 1], self.k[0, 2], self.k[1, 2]
        a = np.linspace(0, 2 * np.pi, 360, endpoint=False)
        rx, ry = np.cos(a) * self.rho_valid, np.sin(a) * self.rho_valid         # the valid disc's rim (ideal)
        raw_x, raw_y = cx + fx * np.cos(a) * self.lens.radial(self.rho_valid), cy + fy * np.sin(a) * self.lens.radial(self.rho_valid)
        seen = (raw_x >= 0) & (raw_x <= w - 1) & (raw_y >= 0) & (raw_y <= h - 1)  # rim directions inside the frame
        if seen.any():
            rx, ry = rx[seen], ry[seen]
        with np.errstate(divide="ignore"):
            sx = np.where(rx > 0, (w - 1 - cx) / (fx * rx), np.where(rx < 0, -cx / (fx * rx), np.inf))
            sy = np.where(ry > 0, (h - 1 - cy) / (fy * ry), np.where(ry < 0, -cy / (fy * ry), np.inf))
        s_all = float(min(np.min(sx), np.min(sy)))
        s = 1.0 + self.lens.balance * (min(s_all, 1e3) - 1.0)
        new = self.k.copy()
        new[0, 0], new[1, 1] = fx * s, fy * s
        return new

    def _build_coarse(self) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.size
        xs = np.arange(0, w + COARSE_STEP, COARSE_STEP, dtype=np.float64)
        ys = np.arange(0, h + COARSE_STEP, COARSE_STEP, dtype=np.float64)
        mx, my = np.meshgrid(xs, ys)
        raw = np.stack([mx.ravel(), my.ravel()], 1)
        und = self.to_undistorted(raw)
        with np.errstate(invalid="ignore"):
            back = self.to_raw(und)
            bad = (~np.isfinite(und).all(axis=1) | ~(np.abs(back - raw).max(axis=1) < 0.5)
                   | ~(self._ideal_radius(und) <= self.rho_valid))
        und[bad] = -1e6  # beyond the model's valid region: outside everything
        return (und[:, 0].reshape(mx.shape).astype(np.float32), und[:, 1].reshape(mx.shape).astype(np.float32))


def undistort_points(pts: np.ndarray, model: str, k: np.ndarray, d: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
    """Raw pixels (N, 2) -> ideal points: normalized coordinates, or pixels of camera matrix `p`."""
    src = np.asarray(pts, np.float64).reshape(-1, 1, 2)
    if model == "fisheye":
        out = cv2.fisheye.undistortPoints(src, k, d, R=np.eye(3), P=p if p is not None else np.eye(3), criteria=_ITERATE)
    elif hasattr(cv2, "undistortPointsIter"):                 # OpenCV 4
        out = cv2.undistortPointsIter(src, k, d, None, p, _ITERATE)
    else:                                                     # OpenCV 5
        out = cv2.undistortPoints(src, k, d, R=None, P=p, criteria=_ITERATE)
    return out.reshape(-1, 2)
