"""The field-of-view circle of a tower, measured over many frames.

Each frame gives a circle (models.core.optics.fov.detect_fov: subpixel rim points, robust fit). Over the
frames: the median circle, frames that disagree with it by more than 3 robust deviations (at
least 0.4%, at most 1% of the radius) rejected as outliers, and the mean of the rest. The notch marker on the rim
(an orientation mark on many scopes) is the angle where the rim is cut in (dark just inside the
circle) in most frames and narrowly so (a shaft across the rim is wider); at least 3 frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.frames import Sample
from models.core.errors import EndoSpineError
from models.core.optics.circlefit import sample_rays
from models.core.optics.fov import Circle, detect_fov

NOTCH_BINS = 720
NOTCH_MAX_WIDTH_DEG = 7.0


@dataclass(frozen=True)
class FovEstimate:
    circle: Circle
    frame_size: tuple[int, int]
    notch_deg: float | None
    total: int                       # frames looked at
    used: int                        # frames whose circle went into the estimate
    spread_px: float                 # how much the used frames' circles differ (largest std of cx, cy, r)
    missing: list[str] = field(default_factory=list)   # frames without a circle
    rejected: list[str] = field(default_factory=list)  # frames whose circle disagreed


def estimate_fov(samples: list[Sample], prepare=None) -> FovEstimate:
    """The circle of a set of frames of one size; `prepare(image) -> image` (e.g. undistortion)
    runs first. EndoSpineError when no frame shows a circle, or the circle is not steady."""
    size = (samples[0].image.shape[1], samples[0].image.shape[0])
    for s in samples:
        if (s.image.shape[1], s.image.shape[0]) != size:
            raise EndoSpineError(f"{s.name}: {s.image.shape[1]}x{s.image.shape[0]}, unlike the {size[0]}x{size[1]} "
                                 "of the first frame; calibrate one video format at a time")
    images = [prepare(s.image) if prepare else s.image for s in samples]
    found = [(s, img, detect_fov(img)) for s, img in zip(samples, images)]
    hits = [(s, img, c) for s, img, c in found if c is not None]
    missing = [s.name for s, _, c in found if c is None]
    if not hits:
        raise EndoSpineError(f"{samples[0].name if len(samples) == 1 else f'{len(samples)} frames from {_origin(samples)}'}: "
                             "no circular field of view (a dark surround around a bright disc) found; a plain camera "
                             "needs none: use the default automatic mode, or fov mode off")
    circles = np.array([(c.cx, c.cy, c.r) for _, _, c in hits])
    med = np.median(circles, axis=0)
    dev = np.abs(circles - med).max(axis=1)
    mad = float(np.median(dev))
    # frames further than 3 robust deviations from the median are outliers; and never more than
    # 1% of the radius away, or they show another circle (zoom, scope) whatever the spread
    keep = dev <= min(max(3 * 1.4826 * mad, 0.004 * med[2], 0.5), max(0.01 * med[2], 0.5))
    if keep.sum() < 0.5 * len(hits):
        raise EndoSpineError(f"{_origin(samples)}: the circle is not steady across the frames (radius from "
                             f"{circles[:, 2].min():.0f} to {circles[:, 2].max():.0f} px): calibrate with one scope at one zoom")
    used = circles[keep]
    cx, cy, r = used.mean(axis=0)
    circle = Circle(float(cx), float(cy), float(r))
    kept_images = [img for (_, img, _), k in zip(hits, keep) if k]
    return FovEstimate(circle, size, find_notch(kept_images, circle), len(samples), int(keep.sum()),
                       float(used.std(axis=0).max()) if len(used) > 1 else 0.0, missing,
                       [s.name for (s, _, _), k in zip(hits, keep) if not k])


def rim_darkness(image: np.ndarray, circle: Circle, bins: int = NOTCH_BINS) -> np.ndarray:
    """Per angle, the share of samples just inside the rim (0.93 r .. 0.995 r) that are dark."""
    angles = np.arange(bins) * (2 * np.pi / bins)
    radii = circle.r * np.linspace(0.93, 0.995, 16)
    level, inside = sample_rays(image, circle.cx, circle.cy, angles, radii)
    picture = float(np.median(level[inside])) if inside.any() else 0.0
    dark = (level < max(24.0, 0.35 * picture)) & inside
    return dark.mean(axis=1)


def find_notch(images: list[np.ndarray], circle: Circle) -> float | None:
    """The notch marker's angle in degrees (clockwise on screen from 3 o'clock), or None."""
    if len(images) < 3:
        return None
    profile = np.median([rim_darkness(img, circle) for img in images], axis=0)
    smooth = np.convolve(np.concatenate([profile[-2:], profile, profile[:2]]), np.ones(5) / 5, mode="valid")
    peak = int(np.argmax(smooth))
    top, base = float(smooth[peak]), float(np.median(smooth))
    if top < 0.2 or top - base < 0.15:
        return None
    half = base + 0.5 * (top - base)
    width = 1
    while width < len(smooth) // 2 and smooth[(peak - width) % len(smooth)] > half:
        width += 1
    right = 1
    while right < len(smooth) // 2 and smooth[(peak + right) % len(smooth)] > half:
        right += 1
    span_deg = (width + right - 1) * 360.0 / len(smooth)
    if span_deg > NOTCH_MAX_WIDTH_DEG:
        return None   # a wide dark stretch of rim: a shaft or shadow, not a notch
    idx = np.arange(peak - width + 1, peak + right)
    w = smooth[idx % len(smooth)] - half
    angle = float(np.sum(idx * w) / np.sum(w)) * 360.0 / len(smooth)
    return round(angle % 360.0, 2)


def draw_preview(image: np.ndarray, est: FovEstimate) -> np.ndarray:
    """The frame with the measured circle, its center and the notch drawn on it."""
    out = image.copy()
    c = est.circle
    s = 16  # fixed-point subpixel drawing
    center = (int(round(c.cx * s)), int(round(c.cy * s)))
    thick = max(1, round(image.shape[0] / 540))
    cv2.circle(out, center, int(round(c.r * s)), (0, 255, 0), thick, cv2.LINE_AA, shift=4)
    cv2.drawMarker(out, (int(round(c.cx)), int(round(c.cy))), (0, 255, 0), cv2.MARKER_CROSS, 8 * thick, thick)
    if est.notch_deg is not None:
        a = np.radians(est.notch_deg)
        p0 = (int(c.cx + np.cos(a) * c.r * 0.85), int(c.cy + np.sin(a) * c.r * 0.85))
        p1 = (int(c.cx + np.cos(a) * c.r * 1.08), int(c.cy + np.sin(a) * c.r * 1.08))
        cv2.line(out, p0, p1, (255, 255, 0), 2 * thick, cv2.LINE_AA)
    return out


def _origin(samples: list[Sample]) -> str:
    return samples[0].name.rsplit(" frame ", 1)[0].rsplit(" at ", 1)[0]
