"""Checks every runtime output passes in the post-processing stage (models/core/runtime/
postprocess.py), so in the live inference worker before a mask leaves it, and in render, predict
and evaluate alike.

A runtime is code the display does not control (a model file, an inference library, a driver).
Whatever it returns, the overlay must never show something that was not computed correctly for
the frame on screen: probabilities that are not finite or not in [0, 1], a class axis of the
wrong length, a crop box outside the frame or a mask of the wrong size are refused here and
reported as one line; live, the supervisor then hides the overlay.
"""
from __future__ import annotations

import numpy as np

from models.core.errors import EndoSpineError

_TOLERANCE = 1e-3  # softmax in float16/float32 may overshoot 1 by a rounding step


def check_probabilities(probs, box, n_classes: int, frame_size: tuple[int, int]) -> None:
    """probs: (C, h, w) float with C == n_classes, finite, within [0, 1]; box: (x, y, w, h) of
    positive size inside the frame of frame_size = (width, height). Raises EndoSpineError."""
    if not isinstance(probs, np.ndarray) or probs.ndim != 3 or probs.shape[0] != n_classes \
            or min(probs.shape) < 1:
        shape = getattr(probs, "shape", type(probs).__name__)
        raise EndoSpineError(f"runtime output has shape {shape}, expected ({n_classes}, h, w)")
    if probs.dtype.kind != "f":
        raise EndoSpineError(f"runtime output has dtype {probs.dtype}, expected floating point")
    lo, hi = float(probs.min()), float(probs.max())  # NaN propagates into min/max; inf shows as inf
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise EndoSpineError("runtime produced non-finite probabilities (NaN or inf)")
    if lo < -_TOLERANCE or hi > 1 + _TOLERANCE:
        raise EndoSpineError(f"runtime probabilities outside [0, 1] (min {lo:.3g}, max {hi:.3g})")
    check_box(box, frame_size)


def check_box(box, frame_size: tuple[int, int]) -> None:
    """(x, y, w, h) integers, w and h positive, inside a frame of (width, height)."""
    try:
        x, y, w, h = (int(v) for v in box)
        exact = all(float(v) == int(v) for v in box)
    except (TypeError, ValueError):
        raise EndoSpineError(f"runtime crop box {box!r} is not four integers") from None
    fw, fh = frame_size
    if not exact or w < 1 or h < 1 or x < 0 or y < 0 or x + w > fw or y + h > fh:
        raise EndoSpineError(f"runtime crop box {tuple(box)} is not inside the {fw}x{fh} frame")


def check_mask(mask, size: tuple[int, int], n_classes: int, ignore_index: int, unsure: bool = False) -> None:
    """mask: (h, w) uint8 with (w, h) == size, values class ids or ignore_index (unsure: class
    ids may carry models.core.types.UNSURE_BIT)."""
    w, h = size
    if not isinstance(mask, np.ndarray) or mask.shape != (h, w) or mask.dtype != np.uint8:
        got = (getattr(mask, "shape", None), getattr(mask, "dtype", type(mask).__name__))
        raise EndoSpineError(f"runtime mask has shape/dtype {got}, expected ({h}, {w}) uint8")
    if int(mask.max()) < n_classes:  # no ignore pixels at all: one reduction
        return
    ids = mask & 0x7F if unsure else mask  # UNSURE_BIT off (255, the ignore id, is checked as it is)
    bad = (ids >= n_classes) & (mask != ignore_index)  # ~0.1 ms for a 512x512 mask
    if bad.any():
        ids = sorted(set(np.unique(mask[bad]).tolist()))
        raise EndoSpineError(f"runtime mask has unknown class ids {ids[:5]}")
