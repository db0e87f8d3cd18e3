"""Preprocessing shared by training, export, prediction and the app's runtime (the way back,
probabilities -> labels, is models/core/runtime/postprocess.py).

The exported model's manifest records these settings; every consumer rebuilds the same steps
from it, so a model sees at run time exactly what it saw in training.

    crop    "center-square": the centered square of side min(W, H) (the endoscope's circular
            field of view sits there on most towers; calibration profiles refine it);
            "none": the whole frame, stretched to the input size.
    resize  to input_size (width, height), INTER_AREA when shrinking, INTER_LINEAR otherwise.
    color   RGB, (x / 255 - mean) / std per channel, NCHW float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROPS = ("center-square", "none")


@dataclass(frozen=True)
class Preprocess:
    input_size: tuple[int, int] = (384, 384)  # (width, height)
    crop: str = "center-square"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    color_order: str = "RGB"

    def __post_init__(self) -> None:
        w, h = self.input_size
        if w % 128 or h % 128 or w <= 0 or h <= 0:
            raise ValueError(f"input size {w}x{h}: both sides must be positive multiples of 128")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.color_order != "RGB":
            raise ValueError("only RGB color order is supported")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")

    def to_dict(self) -> dict:
        return {"input_size": list(self.input_size), "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std), "color_order": self.color_order}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        return cls(input_size=tuple(int(v) for v in d["input_size"]), crop=str(d.get("crop", "center-square")),
                   mean=tuple(float(v) for v in d["mean"]), std=tuple(float(v) for v in d["std"]),
                   color_order=str(d.get("color_order", "RGB")))

    # -- steps ---------------------------------------------------------------------------------
    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the region of a width x height frame that the model sees."""
        if self.crop == "none":
            return 0, 0, width, height
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side

    def resize_to_input(self, region: np.ndarray) -> np.ndarray:
        w, h = self.input_size
        shrink = region.shape[1] > w or region.shape[0] > h
        return cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 (already at input size) -> 1x3xHxW float32."""
        scale = np.float32(1.0 / 255.0)
        x = rgb.astype(np.float32) * scale
        x -= np.asarray(self.mean, np.float32)
        x /= np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))[None]

    def __call__(self, rgb: np.ndarray, box: tuple[int, int, int, int] | None = None
                 ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """A frame -> (input tensor, crop box in frame pixels). `box` overrides the crop setting
        (e.g. the bounding square of a detected field of view)."""
        box = box or self.crop_box(rgb.shape[1], rgb.shape[0])
        x, y, w, h = box
        return self.normalize(self.resize_to_input(rgb[y:y + h, x:x + w])), box
