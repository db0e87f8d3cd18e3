"""Pure drawing helpers: label maps to colors, and colors blended over images.

Fast paths only (cv2.LUT and cv2.addWeighted): these run per frame in the app and per image in
reports.
"""
from __future__ import annotations

import cv2
import numpy as np


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """HxW uint8 class ids -> HxWx3 uint8 RGB through a 256x3 lookup table."""
    index = cv2.cvtColor(labels, cv2.COLOR_GRAY2BGR)
    return cv2.LUT(index, lut.reshape(256, 1, 3))


def blend(image: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float = 0.45,
          show: np.ndarray | None = None) -> np.ndarray:
    """Blend class colors over an RGB image where `show[label]` is true (default: ids 1..254).

    Returns a new image; pixels of hidden classes keep the image unchanged.
    """
    if show is None:
        show = np.zeros(256, bool)
        show[1:255] = True
    color = colorize(labels, lut)
    mixed = cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)
    keep = ~show[labels]
    mixed[keep] = image[keep]
    return mixed
