"""Lens distortion of an endoscope and undoing it: OpenCV's fisheye model or its rational model.

A `LensModel` is what `endospine-calibrate lens` measured (camera matrix and distortion for
frames of `image_size`). An `Undistorter` serves one frame size: the remap that undistorts a
frame (the model's view), and point mappings both ways, so that a mask computed on the
undistorted view is drawn back on the frame the surgeon sees (which stays as the tower shows it).

`balance` chooses the undistorted view: 1 keeps every pixel of the original field of view
(black corners appear), 0 crops to the region that has pixels everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MODELS = {"fisheye": 4, "rational": 8}   # model -> number of distortion coefficients
_ITERATE = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)  # OpenCV's default 5 steps leave
                                                                           # tenths of a pixel at the rim
COARSE_STEP = 4                           # the raw -> undistorted lookup is kept at 1/4 resolution


@dataclass(frozen=True)
class LensModel:
    model: str                                   # fisheye | rational
    image_size: tuple[int, int]                  # (width, height) of the frames it was measured on
    camera_matrix: tuple[tuple[float, ...], ...] # 3x3
    distortion: tuple[float, ...]                # fisheye: k1..k4; rational: k1 k2 p1 p2 k3 k4 k5 k6
    balance: float = 1.0
    undistort: bool = True                       # apply it in the app and the pipeline
    rms_px: float | None = None                  # reprojection error of the calibration
    measured: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: must be one of {', '.join(MODELS)}, got {self.model!r}")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size: expected [width, height] of at least 16, got {list(self.image_size)}")
        k = np.asarray(self.camera_matrix, np.float64)
        if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1:
            raise ValueError("camera_matrix: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
        d = np.asarray(self.distortion, np.float64)
        if d.shape != (MODELS[self.model],) or not np.isfinite(d).all():
            raise ValueError(f"distortion: the {self.model} model has {MODELS[self.model]} coefficients, got {d.size}")
        if not 0.0 <= self.balance <= 1.0:
            raise ValueError(f"balance: must be in 0..1, got {self.balance}")

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


class Undistorter:
    """Undistortion for one frame size (maps built once)."""

    def __init__(self, lens: LensModel, size: tuple[int, int]):
        self.lens, self.size = lens, (int(size[0]), int(size[1]))
        self.k, self.d = lens.matrices(self.size)
        eye = np.eye(3)
        if lens.model == "fisheye":
            self.new_k = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
                self.k, self.d, self.size, eye, balance=lens.balance)
            self._maps = cv2.fisheye.initUndistortRectifyMap(self.k, self.d, eye, self.new_k, self.size, cv2.CV_16SC2)
        else:
            self.new_k, _ = cv2.getOptimalNewCameraMatrix(self.k, self.d, self.size, lens.balance, self.size)
            self._maps = cv2.initUndistortRectifyMap(self.k, self.d, None, self.new_k, self.size, cv2.CV_16SC2)
        self._coarse: tuple[np.ndarray, np.ndarray] | None = None

    # -- images ------------------------------------------------------------------------------
    def frame(self, rgb: np.ndarray) -> np.ndarray:
        return cv2.remap(rgb, *self._maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

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
        grid laid over `box` of the raw frame (from a 1/4-resolution lookup built once)."""
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
        """The raw-frame bounding box of an undistorted-frame box (clipped to the frame)."""
        x, y, bw, bh = box
        t = np.linspace(0, 1, 65)
        edge = np.concatenate([np.stack([x + t * bw, np.full_like(t, y)], 1), np.stack([x + t * bw, np.full_like(t, y + bh)], 1),
                               np.stack([np.full_like(t, x), y + t * bh], 1), np.stack([np.full_like(t, x + bw), y + t * bh], 1)])
        raw = self.to_raw(edge)
        raw = raw[np.isfinite(raw).all(axis=1)]
        w, h = self.size
        if not len(raw):
            return 0, 0, w, h
        x0, y0 = np.clip(np.floor(raw.min(axis=0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(raw.max(axis=0)).astype(int), 1, [w, h])
        return int(x0), int(y0), int(max(1, x1 - x0)), int(max(1, y1 - y0))

    def _build_coarse(self) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.size
        xs = np.arange(0, w + COARSE_STEP, COARSE_STEP, dtype=np.float64)
        ys = np.arange(0, h + COARSE_STEP, COARSE_STEP, dtype=np.float64)
        mx, my = np.meshgrid(xs, ys)
        raw = np.stack([mx.ravel(), my.ravel()], 1)
        und = self.to_undistorted(raw)
        with np.errstate(invalid="ignore"):
            back = self.to_raw(und)
            bad = ~np.isfinite(und).all(axis=1) | ~(np.abs(back - raw).max(axis=1) < 0.5)
        und[bad] = -1e6  # beyond the model's valid range (the inverse does not come back): outside everything
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
