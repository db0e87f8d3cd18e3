"""Scope optics on the internal view: light-at-camera shading, vignetting, white balance, rim ring,
defocus and motion blur, sensor noise and the tone curve."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.synth.noise import Wave

COARSE = 4        # coarse grid step (internal px) for slowly varying layers
HEADROOM = 1.6    # float values up to this map to 255 before the tone curve


@dataclass
class View:
    """The internal render grid: size, the scope circle in it, and normalized coordinates."""
    w: int
    h: int
    cx: float
    cy: float
    r: float
    x: np.ndarray    # float32 (h, w): (col - cx) / r
    y: np.ndarray
    rho: np.ndarray  # float32 (h, w): distance from the center / r
    coarse_px: np.ndarray  # float32 (gh, gw): view px of the coarse grid nodes (cv2.resize-aligned)
    coarse_py: np.ndarray

    @classmethod
    def make(cls, w: int, h: int, cx: float, cy: float, r: float) -> "View":
        xs = (np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(r)
        ys = (np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(r)
        x, y = np.meshgrid(xs, ys)
        gw, gh = max(4, -(-w // COARSE)), max(4, -(-h // COARSE))
        # cv2.resize maps coarse node i to output pixel (i + 0.5) * w / gw - 0.5
        px = (np.arange(gw, dtype=np.float32) + 0.5) * np.float32(w / gw) - 0.5
        py = (np.arange(gh, dtype=np.float32) + 0.5) * np.float32(h / gh) - 0.5
        cpx, cpy = np.meshgrid(px, py)
        return cls(w, h, cx, cy, r, x, y, np.sqrt(x * x + y * y), cpx, cpy)

    def to_px(self, p) -> tuple[float, float]:
        return self.cx + p[0] * self.r, self.cy + p[1] * self.r

    def coarse_rho(self) -> np.ndarray:
        return np.hypot(self.coarse_px - self.cx, self.coarse_py - self.cy) / np.float32(self.r)


class Shading:
    """Light at the camera: diffuse falloff and wet specular highlights from the height map."""

    def __init__(self, rng: np.random.Generator, view: View):
        slope = rng.uniform(0.45, 0.7)   # view-direction tilt at the rim
        self.lx = view.x * np.float32(slope)
        self.ly = view.y * np.float32(slope)
        self.gloss = float(rng.uniform(0.08, 0.3))   # saline and the light angle spread the glare
        self.shine = float(rng.uniform(30, 80))
        self.glint_blur = 1.5 * view.r / 256.0
        self.relief = float(rng.uniform(0.7, 1.2))

    def apply(self, rgbh: np.ndarray, zoom: float) -> np.ndarray:
        """RGB float32 (h, w, 3) lit image from warped albedo + height."""
        height = cv2.extractChannel(rgbh, 3)
        k = self.relief * zoom / 8.0
        gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=k)
        gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=k)
        gx -= self.lx
        gy -= self.ly
        q = cv2.multiply(gx, gx)
        q += cv2.multiply(gy, gy)
        diffuse = cv2.sqrt(q + 1.0)
        diffuse = cv2.divide(1.0, diffuse)
        # blurring the misalignment first turns thin glint contours into soft blobs
        spec = cv2.exp(cv2.GaussianBlur(q, (0, 0), self.glint_blur) * np.float32(-self.shine))
        spec *= np.float32(self.gloss)
        img = cv2.cvtColor(rgbh, cv2.COLOR_RGBA2RGB)
        img *= cv2.merge([diffuse, diffuse, diffuse])
        img += cv2.merge([spec, spec * np.float32(0.9), spec * np.float32(0.76)])   # warm light
        return img


class Lens:
    """Vignetting and white balance (coarse, folded into the fluid layers), then the finish:
    rim ring, defocus and motion blur, sensor noise, tone curve -> uint8."""

    def __init__(self, rng: np.random.Generator, view: View):
        rim_level = rng.uniform(0.65, 0.85)
        power = rng.uniform(2.0, 3.5)
        fall = (1.0 - rim_level) * np.minimum(view.coarse_rho(), 1.0) ** power
        # (3, gh, gw): red falls off a little less, so the periphery turns warmer, not greyer
        self.vig = np.stack([1.0 - fall * k for k in (0.85, 1.0, 1.1)]).astype(np.float32)
        red = rng.uniform(0.0, 0.06)   # log gains; green and blue never above red (warm light)
        green = red - rng.uniform(0.02, 0.1)
        self.gain = np.array([red, green, green + rng.uniform(0.0, 0.06)])
        self.wb_drift = [Wave(rng, 0.012, (200, 900)) for _ in range(3)]
        self.lut = _tone_lut(rng.uniform(0.95, 1.08), rng.uniform(0.9, 1.02))
        scale = view.r / 256.0
        self.sigma0 = rng.uniform(0.25, 0.5) * scale
        self.defocus = Wave(rng, rng.uniform(0.1, 0.8) * scale, (90, 500))
        self.shutter = rng.uniform(0.4, 1.0)
        self.glare = float(rng.uniform(0.08, 0.25))
        ring_d = (view.rho - 1.0) * np.float32(view.r)   # px from the circle, negative inside
        ring = np.exp(-((ring_d + 1.3) / 0.9) ** 2) * (ring_d < 0.8)
        color = np.array([1.0, 0.62, 0.26]) * rng.uniform(0.9, 1.15) * 255.0 / HEADROOM
        self.rim = np.clip(ring[..., None] * color, 0, 255).astype(np.uint8)
        sigma = rng.uniform(1.5, 3.2) / HEADROOM
        noise = rng.standard_normal((view.h + 16, view.w + 16, 3), np.float32) * np.float32(sigma)
        self.noise_pos = np.clip(np.round(noise), 0, 255).astype(np.uint8)
        self.noise_neg = np.clip(np.round(-noise), 0, 255).astype(np.uint8)

    def gain_at(self, t: int) -> np.ndarray:
        return np.exp(self.gain + np.array([w(t) for w in self.wb_drift])).astype(np.float32)

    def finish(self, img: np.ndarray, t: int, velocity: tuple[float, float],
               rng: np.random.Generator) -> np.ndarray:
        # veiling glare: light scattered in the fluid and optics spreads widely (milky, soft)
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(2, w // 16), max(2, h // 16)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 2.0)
        glare = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        img = cv2.addWeighted(img, 1.0 - self.glare, glare, self.glare, 0.0)
        out = cv2.convertScaleAbs(img, alpha=255.0 / HEADROOM)
        sigma = self.sigma0 + max(0.0, self.defocus(t))
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        length = float(np.hypot(*velocity)) * self.shutter
        if length > 1.5:
            out = _motion_blur(out, velocity, length)
        cv2.add(out, self.rim, dst=out)
        oy, ox = rng.integers(0, 16, 2)
        cv2.add(out, self.noise_pos[oy:oy + h, ox:ox + w], dst=out)
        cv2.subtract(out, self.noise_neg[oy:oy + h, ox:ox + w], dst=out)
        return cv2.LUT(out, self.lut)


def _tone_lut(exposure: float, gamma: float) -> np.ndarray:
    """Exposure, slight gamma lift and a soft shoulder (highlights roll off instead of clipping)."""
    x = np.arange(256, dtype=np.float64) / 255.0 * HEADROOM * exposure
    knee = 0.88
    y = np.where(x < knee, x, knee + (1 - knee) * (1 - np.exp(-(x - knee) / (1 - knee))))
    y = np.clip(y, 0, 1) ** gamma
    return np.round(y * 255).astype(np.uint8)


def _motion_blur(img: np.ndarray, velocity: tuple[float, float], length: float) -> np.ndarray:
    """Average of a few copies shifted along the motion (cheap line blur)."""
    length = min(length, 16.0)
    taps = 3 if length < 5 else 4
    ux, uy = np.asarray(velocity, np.float64) / max(1e-6, float(np.hypot(*velocity)))
    h, w = img.shape[:2]
    out = None
    for i in range(taps):
        s = (i / (taps - 1) - 0.5) * length
        m = np.array([[1, 0, s * ux], [0, 1, s * uy]], np.float64)
        shifted = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = shifted if out is None else cv2.addWeighted(out, i / (i + 1), shifted, 1 / (i + 1), 0)
    return out
