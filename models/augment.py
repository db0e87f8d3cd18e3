"""Training augmentation for endoscopic frames (numpy/OpenCV, per sample, seeded).

Geometry changes image and label together (label with nearest neighbour, uncovered pixels
become ignore); photometric changes touch the image only. Endoscope views rotate freely, so
rotation covers the full circle.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.core.imageio import decode_image


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 256                    # square training crop (multiple of 128)
    scale: tuple[float, float] = (0.7, 1.4)
    rotate: float = 180.0              # max degrees either way
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 6.0                   # degrees of hue shift either way
    gamma: tuple[float, float] = (0.8, 1.25)
    blur: float = 0.3                  # probability of a Gaussian (defocus) or motion blur
    noise: float = 0.2                 # probability of sensor noise
    jpeg: float = 0.2                  # probability of a JPEG round trip

    def __post_init__(self) -> None:
        if self.crop % 128 or self.crop <= 0:
            raise ValueError(f"augment crop {self.crop} must be a positive multiple of 128")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"augment scale {self.scale} must be 0 < low <= high")


def augment(image: np.ndarray, label: np.ndarray, base_size: int, cfg: AugmentConfig,
            rng: np.random.Generator, ignore: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: image/label already cropped to the model's view (any size).

    The view is scaled so that its short side is `base_size` x a random scale (the model's
    input size at scale 1), rotated, flipped and cropped to cfg.crop.
    """
    h, w = label.shape
    s = base_size / min(h, w) * rng.uniform(*cfg.scale)
    angle = rng.uniform(-cfg.rotate, cfg.rotate)
    out = cfg.crop
    # One affine warp does scale + rotation + crop: rotate about a random center inside the view.
    cx = rng.uniform(0.35, 0.65) * w
    cy = rng.uniform(0.35, 0.65) * h
    m = cv2.getRotationMatrix2D((cx, cy), angle, s)
    m[0, 2] += out / 2 - cx
    m[1, 2] += out / 2 - cy
    interp = cv2.INTER_AREA if s < 0.7 else cv2.INTER_LINEAR
    img = cv2.warpAffine(image, m, (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    lab = cv2.warpAffine(label, m, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=ignore)
    if rng.random() < cfg.hflip:
        img, lab = img[:, ::-1], lab[:, ::-1]
    if rng.random() < cfg.vflip:
        img, lab = img[::-1], lab[::-1]
    img = photometric(np.ascontiguousarray(img), cfg, rng)
    return img, np.ascontiguousarray(lab)


def photometric(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    x *= 1 + rng.uniform(-cfg.brightness, cfg.brightness)
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    gray = x.mean(axis=2, keepdims=True)
    x = (x - gray) * (1 + rng.uniform(-cfg.saturation, cfg.saturation)) + gray
    x = np.clip(x, 0, 255)
    x = 255 * (x / 255) ** rng.uniform(*cfg.gamma)
    out = x.astype(np.uint8)
    if cfg.hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        shift = int(round(rng.uniform(-cfg.hue, cfg.hue) / 2))  # OpenCV hue is 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < cfg.blur:
        if rng.random() < 0.7:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
        else:
            out = _motion_blur(out, int(rng.integers(3, 10)), rng.uniform(0, 180))
    if rng.random() < cfg.noise:
        noise = rng.normal(0, rng.uniform(2, 8), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])
        if ok:  # channel order does not matter for a round trip
            out = decode_image(buf.tobytes(), "augment: JPEG round trip")
    return out


def _motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
