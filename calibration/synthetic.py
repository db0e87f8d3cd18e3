"""Frames with known answers, for testing and measuring the calibration tools.

- `fov_case(kind, seed)`: an endoscope frame with a known circle, made hard on purpose: the
  circle off center on 16:9, letterbox bars, instruments across the rim, dark tissue at the
  rim, text burned in by the tower, or all of them.
- `white_card(...)`, `cast(...)`: a white reference seen through the scope, and color casts
  (linear-light channel gains, as a wrong white balance is).
- boards through a known lens: calibration/synthetic_lens.py.
The picture inside the circle comes from the synthetic scene engine (models.synth).
"""
from __future__ import annotations

import cv2
import numpy as np

from models.core.optics.color import linear_to_srgb8, srgb8_to_linear
from models.core.optics.fov import Circle
from models.synth import SyntheticClip

FOV_CASES = ("centered", "offcenter-16x9", "letterbox", "instruments", "dark-rim", "text", "all")


def scope_picture(seed: int, side: int, t: int = 20) -> tuple[np.ndarray, Circle]:
    """A square synthetic endoscope frame and its circle (center, radius in its pixels)."""
    clip = SyntheticClip(seed, 0, side, side)
    cx, cy, r = clip.fov
    return clip.render(t)[0], Circle(cx, cy, r)


def fov_case(kind: str, seed: int = 0, size: tuple[int, int] = (1280, 720)) -> tuple[np.ndarray, Circle]:
    """A frame of `size` and its true field-of-view circle, for one of FOV_CASES."""
    if kind not in FOV_CASES:
        raise ValueError(f"kind must be one of {FOV_CASES}")
    rng = np.random.default_rng([seed, FOV_CASES.index(kind)])
    w, h = size
    frame = rng.integers(0, 7, (h, w, 3), dtype=np.uint8)  # a dark, slightly noisy surround
    bar = int(h * rng.uniform(0.04, 0.07)) if kind in ("letterbox", "all") else 0
    side = min(int(h * rng.uniform(0.78, 0.9)), h - 2 * bar - 4)
    ox, oy = (w - side) // 2, (h - side) // 2
    if kind in ("offcenter-16x9", "all"):
        ox += int(rng.choice([-1, 1]) * rng.uniform(0.12, 0.2) * w)
        oy += int(rng.uniform(-0.45, 0.45) * (h - 2 * bar - side))
    picture, c = scope_picture(seed, side)
    inside = _disc(side, c)
    region = frame[oy:oy + side, ox:ox + side]
    region[inside] = picture[inside]
    circle = Circle(c.cx + ox, c.cy + oy, c.r)
    if kind in ("instruments", "all"):
        _instruments(frame, circle, rng)
    if kind in ("dark-rim", "all"):
        _dark_rim(frame, circle, rng)
    if bar:
        frame[:bar] = 16          # letterbox bars in limited-range video black, not 0
        frame[h - bar:] = 16
    if kind in ("text", "all"):
        _text(frame, circle, rng)
    return frame, circle


def _disc(side: int, c: Circle) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return (xx - c.cx) ** 2 + (yy - c.cy) ** 2 <= c.r ** 2


def _inside(frame: np.ndarray, circle: Circle, shrink: float = 0.0) -> np.ndarray:
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - circle.cx) ** 2 + (yy - circle.cy) ** 2 <= (circle.r - shrink) ** 2


def _instruments(frame: np.ndarray, circle: Circle, rng: np.random.Generator) -> None:
    """A black and a bright steel shaft entering across the rim (drawn only inside the circle:
    the optics cannot see past their own edge)."""
    layer = frame.copy()
    for color in ((12, 12, 14), (215, 218, 222)):
        a = rng.uniform(0, 2 * np.pi)
        tip = 0.3 * circle.r
        p0 = (circle.cx + np.cos(a) * circle.r * 1.2, circle.cy + np.sin(a) * circle.r * 1.2)
        p1 = (circle.cx + np.cos(a + 0.3) * tip, circle.cy + np.sin(a + 0.3) * tip)
        cv2.line(layer, tuple(int(v) for v in p0), tuple(int(v) for v in p1), color,
                 int(circle.r * rng.uniform(0.12, 0.2)), cv2.LINE_AA)
    keep = _inside(frame, circle)
    frame[keep] = layer[keep]


def _dark_rim(frame: np.ndarray, circle: Circle, rng: np.random.Generator) -> None:
    """A quarter of the rim in very dark tissue (a shadowed recess): levels 25-40, not black."""
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    ang = np.arctan2(yy - circle.cy, xx - circle.cx)
    a0 = rng.uniform(-np.pi, np.pi)
    sector = np.abs(np.angle(np.exp(1j * (ang - a0)))) < np.pi / 4
    d = np.hypot(xx - circle.cx, yy - circle.cy)
    band = sector & (d <= circle.r) & (d > 0.75 * circle.r)
    dark = np.array([38, 27, 25], np.float32) * rng.uniform(0.85, 1.05, (h, w, 1)).astype(np.float32)
    frame[band] = np.clip(dark[band], 0, 255).astype(np.uint8)


def _text(frame: np.ndarray, circle: Circle, rng: np.random.Generator) -> None:
    """Tower overlays burned into the surround: patient line, clock, zoom, and a label set close
    beside the circle, where a careless detector would merge it with the picture."""
    h, w = frame.shape[:2]
    scale = h / 720
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(2 * scale))
    layer = frame.copy()
    lines = [("OR 3  PT 0042-117  L4/L5 LEFT", (int(12 * scale), int(34 * scale))),
             (f"{rng.integers(8, 18):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}",
              (int(w - 170 * scale), int(34 * scale))),
             ("ZOOM 1.0x  SHUTTER AUTO", (int(12 * scale), int(h - 20 * scale)))]
    for text, org in lines:
        cv2.putText(layer, text, org, font, 0.9 * scale, (235, 235, 235), thick, cv2.LINE_AA)
    side = 1 if circle.cx + circle.r + 70 * scale < w else -1
    x = int(circle.cx + side * (circle.r + 8 * scale)) - (int(60 * scale) if side < 0 else 0)
    cv2.putText(layer, "AWB", (x, int(circle.cy)), font, 0.8 * scale, (240, 240, 240), thick, cv2.LINE_AA)
    surround = ~_inside(frame, circle, shrink=-1.0)
    frame[surround] = layer[surround]


# -- color ---------------------------------------------------------------------------------------
def white_card(size: tuple[int, int], circle: Circle, level: float = 0.55, seed: int = 0) -> np.ndarray:
    """A gray/white card filling the scope's view: a neutral level (linear light) with the
    scope's vignetting, a little texture and noise; black outside the circle."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - circle.cx, yy - circle.cy) / circle.r
    lin = level * (1 - 0.3 * d ** 2) * (1 + rng.normal(0, 0.01, (h, w)))
    img = linear_to_srgb8(np.repeat(lin[..., None], 3, axis=2).astype(np.float32))
    img[d > 1] = 0
    return img


def cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """The picture under a color cast: linear-light channel gains, clipped like a sensor."""
    lin = srgb8_to_linear(rgb) * np.asarray(gains, np.float32)
    return linear_to_srgb8(lin)


# A wrong white balance in either direction, and a tinted light source (linear gains).
CASTS = ((1.25, 1.0, 0.72), (0.78, 1.0, 1.3), (1.1, 0.9, 1.25), (1.35, 1.05, 0.85), (0.9, 1.12, 0.8))


# -- latency -------------------------------------------------------------------------------------
def simulated_loopback(delay_ms: float, seconds: float = 4.0, display_hz: float = 60.0, camera_fps: float = 30.0,
                       exposure_ms: float = 8.0, seed: int = 0, t0: float = 5000.0):
    """A loopback without hardware: the pattern as `endospine pattern` draws it every display
    refresh, seen `delay_ms` later by a camera (exposure spanning refreshes blends patterns;
    scaled, tilted, blurred, dim, noisy), each camera frame stamped when it "arrives".
    Yields (RGB frame, arrival time in seconds) like calibration.frames.live_frames."""
    from models.core.optics.loopback import encode, render

    rng = np.random.default_rng(seed)
    screens: dict[int, np.ndarray] = {}

    def screen(k: int) -> np.ndarray:        # display frame k, drawn at t0 + k / display_hz
        if k not in screens:
            screens[k] = render(encode(k & 0xFFFF, int(round((t0 + k / display_hz) * 1000)) & 0xFFFFFFFF),
                                960, 540).astype(np.float32)
            screens.pop(k - 8, None)
        return screens[k]

    angle, scale = rng.uniform(-4, 4), rng.uniform(0.45, 0.6)
    view = cv2.getRotationMatrix2D((480, 270), angle, scale)
    view[:, 2] += [320 - 480 + rng.uniform(-40, 40), 240 - 270 + rng.uniform(-30, 30)]
    for j in range(int(seconds * camera_fps)):
        arrival = t0 + 0.5 + j / camera_fps + rng.uniform(-0.002, 0.002)
        mid = arrival - delay_ms / 1000.0               # the screen moment this frame shows
        a, b = mid - exposure_ms / 2000.0, mid + exposure_ms / 2000.0
        image = np.zeros((540, 960), np.float32)
        for k in range(int(np.floor((a - t0) * display_hz)), int(np.floor((b - t0) * display_hz)) + 1):
            lo, hi = max(a, t0 + k / display_hz), min(b, t0 + (k + 1) / display_hz)
            if hi > lo:
                image += screen(k)[..., 0] * ((hi - lo) / (b - a))
        cam = cv2.warpAffine(image, view, (640, 480), borderValue=20.0)
        cam = 30 + 0.65 * cv2.GaussianBlur(cam, (0, 0), 1.2) + rng.normal(0, 3, cam.shape)
        yield np.repeat(np.clip(cam, 0, 255).astype(np.uint8)[..., None], 3, axis=2), arrival
