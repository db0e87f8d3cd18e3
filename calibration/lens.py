"""Lens calibration from checkerboard images: OpenCV's fisheye model or its rational model.

PATTERN is COLSxROWS of *inner* corners (where four squares meet), OpenCV's convention: a board
of 10x7 squares has 9x6 inner corners. Corners are found with OpenCV's sector-based detector
(subpixel, robust to blur and vignetting); an image where the whole board is not found is named
in the report and left out. At least MIN_VIEWS boards are needed, from different angles and
distances, reaching into the periphery of the field of view where the distortion is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.frames import Sample
from models.core.errors import EndoSpineError
from models.core.optics.lens import LensModel

MIN_VIEWS = 4


@dataclass(frozen=True)
class LensEstimate:
    lens: LensModel
    rms_px: float                       # reprojection error over all corners
    per_image_px: dict[str, float]      # RMS per image used
    missing: list[str] = field(default_factory=list)   # images where the board was not found


def parse_pattern(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EndoSpineError(f"--pattern {text!r}: expected COLSxROWS of inner corners, e.g. 9x6") from None
    if cols < 3 or rows < 3:
        raise EndoSpineError(f"--pattern {text!r}: a board needs at least 3x3 inner corners")
    return cols, rows


def find_corners(image: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """(N, 2) float32 subpixel inner corners, row by row, or None when the whole board is not seen."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    ok, corners = False, None
    for flags in (cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY,          # fast, then thorough
                  cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY):
        ok, corners = cv2.findChessboardCornersSB(gray, pattern, flags=flags)
        if ok:
            break
    if not ok:
        ok, corners = cv2.findChessboardCorners(gray, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not ok:
            return None
        corners = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1),
                                   (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3))
    return corners.reshape(-1, 2).astype(np.float32)


def board_points(pattern: tuple[int, int], square: float = 1.0) -> np.ndarray:
    cols, rows = pattern
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2).astype(np.float64)
    return np.hstack([grid * square, np.zeros((len(grid), 1))])


def calibrate(samples: list[Sample], pattern: tuple[int, int], model: str = "fisheye", balance: float = 1.0
              ) -> LensEstimate:
    """Fit the lens model to the boards found in `samples` (all of one size)."""
    size = (samples[0].image.shape[1], samples[0].image.shape[0])
    views, missing = [], []
    for s in samples:
        if (s.image.shape[1], s.image.shape[0]) != size:
            raise EndoSpineError(f"{s.name}: {s.image.shape[1]}x{s.image.shape[0]}, unlike the {size[0]}x{size[1]} "
                                 "of the first image; calibrate one video format at a time")
        corners = find_corners(s.image, pattern)
        if corners is None:
            missing.append(s.name)
        else:
            views.append((s.name, corners))
    if len(views) < MIN_VIEWS:
        named = f" (not found in: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})" if missing else ""
        raise EndoSpineError(f"a {pattern[0]}x{pattern[1]} checkerboard was found in {len(views)} of {len(samples)} "
                             f"images, at least {MIN_VIEWS} needed{named}")
    obj = board_points(pattern)
    if model == "fisheye":
        k, d, rvecs, tvecs = _fisheye(views, obj, size)
    elif model == "rational":
        k, d, rvecs, tvecs = _rational(views, obj, size)
    else:
        raise EndoSpineError(f"--model {model!r}: expected fisheye or rational")
    per_image, sq, n = {}, 0.0, 0
    for (name, corners), rvec, tvec in zip(views, rvecs, tvecs):
        proj = _project(obj, rvec, tvec, k, d, model)
        err = np.sum((proj - corners.astype(np.float64)) ** 2, axis=1)
        per_image[name] = round(float(np.sqrt(err.mean())), 4)
        sq, n = sq + float(err.sum()), n + len(err)
    rms = float(np.sqrt(sq / n))
    # the model is trusted out to the farthest corner seen (beyond it a fitted polynomial only extrapolates)
    reach = max(float(np.hypot(c[:, 0] - k[0, 2], c[:, 1] - k[1, 2]).max()) for _, c in views)
    try:  # a degenerate fit (boards all in one spot, a wrong pattern) gives values no lens has
        lens = LensModel(model, size, tuple(tuple(float(v) for v in row) for row in k),
                         tuple(float(v) for v in np.ravel(d)), balance=balance, undistort=True, rms_px=round(rms, 4),
                         valid_radius=round(reach * 1.02, 2),
                         measured={"images": len(samples), "boards": len(views), "pattern": f"{pattern[0]}x{pattern[1]}"})
    except ValueError as exc:
        raise EndoSpineError(f"the {model} fit is not a usable lens ({exc}); use more board images, spread "
                             "over the whole view") from None
    return LensEstimate(lens, rms, per_image, missing)


def _fisheye(views, obj, size):
    objp = [obj.reshape(1, -1, 3) for _ in views]             # (1, N, 3): what both OpenCV 4 and 5 accept
    imgp = [c.reshape(1, -1, 2).astype(np.float64) for _, c in views]
    flags = _fisheye_flag("CALIB_RECOMPUTE_EXTRINSIC") | _fisheye_flag("CALIB_FIX_SKEW")
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 200, 1e-9)
    try:
        _, k, d, rvecs, tvecs = cv2.fisheye.calibrate(objp, imgp, size, None, None, flags=flags, criteria=criteria)
    except cv2.error as exc:
        raise EndoSpineError(f"fisheye calibration failed ({_cv_reason(exc)}): use more boards, at varied angles, "
                             "or --model rational") from None
    return k, d.reshape(4), rvecs, tvecs


def _fisheye_flag(name: str) -> int:
    """OpenCV 4 keeps the fisheye flags in cv2.fisheye, OpenCV 5 at the top level."""
    value = getattr(cv2.fisheye, name, None)
    return int(value if value is not None else getattr(cv2, name))


def _rational(views, obj, size):
    objp = [obj.astype(np.float32) for _ in views]
    imgp = [c.reshape(-1, 1, 2) for _, c in views]
    try:
        _, k, d, rvecs, tvecs = cv2.calibrateCamera(objp, imgp, size, None, None, flags=cv2.CALIB_RATIONAL_MODEL)
    except cv2.error as exc:
        raise EndoSpineError(f"rational-model calibration failed ({_cv_reason(exc)}): use more boards") from None
    return k, np.ravel(d)[:8], rvecs, tvecs


def _project(obj, rvec, tvec, k, d, model) -> np.ndarray:
    if model == "fisheye":
        pts, _ = cv2.fisheye.projectPoints(obj.reshape(-1, 1, 3), rvec, tvec, k, d.reshape(4, 1))
    else:
        pts, _ = cv2.projectPoints(obj, rvec, tvec, k, d)
    return pts.reshape(-1, 2)


def _cv_reason(exc: cv2.error) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else "OpenCV error").strip(" >")[:160]
