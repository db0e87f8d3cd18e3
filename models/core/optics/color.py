"""Color: sRGB <-> linear light, CIELAB, the CIEDE2000 difference, and the color correction
of an endoscope profile.

A correction is a 3x3 matrix applied per pixel in linear light (a white balance is its
diagonal: channel gains, as a camera applies them to sensor values). The same object runs in
the app's inference worker, in training and in prediction, so a model sees the same colors
everywhere. Per frame it costs one cv2.LUT for gains (about 1 ms at 1080p); a full matrix
takes the float path (decode LUT, cv2.transform, 16-bit encode LUT).

CIEDE2000 follows Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
implementation notes, supplementary test data, and mathematical observations", Color Research
and Application 30(1), 2005 (tested against their 34 published pairs).
"""
from __future__ import annotations

import cv2
import numpy as np

# sRGB (IEC 61966-2-1) primaries, D65 white
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
LUMA = _RGB_TO_XYZ[1]          # relative luminance Y of linear RGB


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 -> linear light 0..1."""
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light 0..1 -> sRGB-encoded 0..1 (clipped to 0..1 first)."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


_DECODE = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)          # uint8 -> linear
_ENCODE16 = np.round(linear_to_srgb(np.arange(65536) / 65535.0) * 255).astype(np.uint8)


def srgb8_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB image -> float32 linear light 0..1."""
    return np.take(_DECODE, rgb)


def linear_to_srgb8(lin: np.ndarray) -> np.ndarray:
    """float linear light (clipped to 0..1) -> uint8 sRGB."""
    q = np.multiply(lin, 65535.0, dtype=np.float32)
    q += 0.5
    np.clip(q, 0, 65535, out=q)
    return np.take(_ENCODE16, q.astype(np.uint16))


def rgb8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> CIELAB (..., 3) float64, D65 white."""
    xyz = srgb8_to_linear(rgb).astype(np.float64) @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 color difference of CIELAB arrays (..., 3), kL = kC = kH = 1."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma0 = (c1p * c2p) == 0                       # a neutral color has no hue

    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma0, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))

    lp_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    h_bar = np.where(chroma0, hsum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (lp_bar - 50) ** 2 / np.sqrt(20 + (lp_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = dlp / s_l, dcp / s_c, dhp / s_h
    return np.sqrt(tl ** 2 + tc ** 2 + th ** 2 + r_t * tc * th)


class ColorCorrection:
    """out = matrix @ in per pixel, in linear light; uint8 RGB in, uint8 RGB out."""

    def __init__(self, matrix) -> None:
        m = np.asarray(matrix, np.float64).reshape(3, 3)
        if not np.isfinite(m).all():
            raise ValueError("color matrix must be finite")
        self.matrix = m
        self.identity = bool(np.allclose(m, np.eye(3), atol=1e-9))
        self.diagonal = bool(np.allclose(m, np.diag(np.diag(m)), atol=1e-12))
        if self.diagonal:
            lin = _DECODE.astype(np.float64)[:, None] * np.diag(m)[None, :]      # (256, 3)
            self._lut = linear_to_srgb8(lin).reshape(1, 256, 3)
        else:
            self._decode = np.repeat(_DECODE.reshape(1, 256, 1), 3, axis=2)
            self._m = m.astype(np.float32)

    @classmethod
    def from_gains(cls, gains) -> "ColorCorrection":
        return cls(np.diag(np.asarray(gains, np.float64)))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The corrected picture (the same array when the correction is the identity)."""
        if self.identity:
            return rgb
        if self.diagonal:
            return cv2.LUT(rgb, self._lut)
        lin = cv2.transform(cv2.LUT(rgb, self._decode), self._m)
        return linear_to_srgb8(lin)


def luminance_preserving_gains(mean_linear: np.ndarray) -> np.ndarray:
    """Channel gains that make a color of this linear mean neutral gray at its own luminance."""
    mean_linear = np.asarray(mean_linear, np.float64)
    return float(LUMA @ mean_linear) / mean_linear
