"""Preprocessing shared by training, export, prediction and the app's runtime (the way back,
probabilities -> labels, is models/core/runtime/postprocess.py).

The exported model's manifest records these settings; every consumer rebuilds the same steps
from it, so a model sees at run time exactly what it saw in training.

    crop    "center-square": the centered square of side min(W, H) (the endoscope's circular
            field of view sits there on most towers; calibration profiles refine it);
            "none": the whole frame, stretched to the input size.
    resize  to input_size (width, height), INTER_AREA when shrinking, INTER_LINEAR otherwise.
    color   RGB, (x / 255 - mean) / std per channel, NCHW float32; or, for a model whose input
            is the picture itself (an INT8 model, models/int8ends.py), the RGB bytes in 2x2
            blocks: NHWC uint8 of (H/2, W/2, 12), each block's rows top then bottom, pixels left
            then right, channels R, G, B (ONNX SpaceToDepth's order).

Every value is checked where a Preprocess is made (a manifest is hostile input): input size a
multiple of 128 in 128..4096, three finite mean and std values in 0..1 pixel units (std at
least 0.01; PaddleSeg-style 0..255 values are refused with a hint), a known crop and color order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

CROPS = ("center-square", "none")
COLOR_ORDERS = ("RGB",)
INPUT_SIDE = (128, 4096)   # pixels; a 4096x4096 input is already a 200 MB tensor
INPUT_MULTIPLE = 128       # the networks downsample by up to 32 and upsample by fixed factors
MEAN_RANGE = (0.0, 1.0)    # pixel units of 0..1 (x / 255)
STD_RANGE = (0.01, 1.0)    # below 0.01 a few grey levels of noise span the whole input range
FIELDS = ("input_size", "crop", "mean", "std", "color_order")
ENCODINGS = {"tensor": np.float32,  # a model's input: normalized, 1x3xHxW float32
             "blocks": np.uint8}    # or the picture's bytes in 2x2 blocks, 1x(H/2)x(W/2)x12 uint8


@dataclass(frozen=True)
class Preprocess:
    input_size: tuple[int, int] = (384, 384)  # (width, height)
    crop: str = "center-square"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    color_order: str = "RGB"

    def __post_init__(self) -> None:
        """Every value in range, or ValueError('field: problem')."""
        low, high = INPUT_SIDE
        if len(self.input_size) != 2 or not all(
                isinstance(v, (int, np.integer)) and low <= v <= high and v % INPUT_MULTIPLE == 0
                for v in self.input_size):
            raise ValueError(f"input_size: {_shown(self.input_size)}: expected [width, height], each a multiple "
                             f"of {INPUT_MULTIPLE} in {low}..{high}")
        if self.crop not in CROPS:
            raise ValueError(f"crop: must be one of {', '.join(CROPS)}, got {self.crop!r}")
        if self.color_order not in COLOR_ORDERS:
            raise ValueError(f"color_order: must be one of {', '.join(COLOR_ORDERS)}, got {self.color_order!r}")
        for name, (low, high) in (("mean", MEAN_RANGE), ("std", STD_RANGE)):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name}: {_shown(values)}: expected three finite numbers (R, G, B)")
            if all(0 <= v <= 255 for v in values) and any(v > high for v in values):
                raise ValueError(f"{name}: {_shown(values)} looks like 0..255 pixel units (PaddleSeg style); "
                                 f"EndoSpine uses 0..1 units (divide by 255)")
            if not all(low <= v <= high for v in values):
                raise ValueError(f"{name}: {_shown(values)}: each must be in {low:g}..{high:g} (0..1 pixel units)")

    def to_dict(self) -> dict:
        return {"input_size": list(self.input_size), "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std), "color_order": self.color_order}

    @classmethod
    def from_dict(cls, d: Any) -> "Preprocess":
        """A manifest's preprocess section, every field typed and in range; ValueError('field: problem')."""
        if not isinstance(d, dict):
            raise ValueError(f"must be a mapping of {', '.join(FIELDS)}, got {type(d).__name__}")
        for key in d:
            if key not in FIELDS:
                raise ValueError(f"{key}: unknown field (expected {', '.join(FIELDS)})")
        for key in ("input_size", "mean", "std"):
            if key not in d:
                raise ValueError(f"{key}: missing")
        for key in ("crop", "color_order"):
            if key in d and not isinstance(d[key], str):
                raise ValueError(f"{key}: expected a name, got {_shown(d[key])}")
        return cls(input_size=_numbers(d, "input_size", 2, int), crop=d.get("crop", "center-square"),
                   mean=_numbers(d, "mean", 3, float), std=_numbers(d, "std", 3, float),
                   color_order=d.get("color_order", "RGB"))

    # -- steps ---------------------------------------------------------------------------------
    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the region of a width x height frame that the model sees."""
        if self.crop == "none":
            return 0, 0, width, height
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side

    def resize_to_input(self, region: np.ndarray) -> np.ndarray:
        """The region at the input size: area averaging when shrinking, bilinear when enlarging.
        A reduction by 2x or more (a live 1080p frame's crop) averages whole blocks of k x k
        pixels (OpenCV's fast path for integer factors), then scales the rest, under 2x,
        bilinearly, as training's augmentation scales its frames: an 899-pixel crop of a 1080p
        frame to 384 costs 1.0 ms instead of 6.8 ms on one thread; the shipped model's mean IoU
        over 60 frames of the 1080p60 clip went from 0.8405 to 0.8418, over 30 of the 4K clip's
        1080p view from 0.8443 to 0.8461 (one clip each: a check, not a headline). Smaller
        reductions (the datasets' 512-pixel frames) stay one area average."""
        w, h = self.input_size
        rh, rw = region.shape[:2]
        if rw <= w and rh <= h:
            return cv2.resize(region, (w, h), interpolation=cv2.INTER_LINEAR)
        k = min(rw // w, rh // h)
        if k < 2:
            return cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)
        # whole blocks only: the fast path needs the exact factor (the last k - 1 rows and columns
        # at most are left out, under 0.2% of an 899-pixel crop)
        blocks = cv2.resize(region[:rh // k * k, :rw // k * k], (rw // k, rh // k), interpolation=cv2.INTER_AREA)
        return cv2.resize(blocks, (w, h), interpolation=cv2.INTER_LINEAR)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 (already at input size) -> 1x3xHxW float32: (x / 255 - mean) / std, as
        x * scale - offset per channel, written plane by plane into the tensor (one pass per
        plane, no HWC float copy to transpose: 0.3 ms instead of 6.7 ms at 384x384, measured)."""
        h, w = rgb.shape[:2]
        out = np.empty((1, 3, h, w), np.float32)
        std = np.asarray(self.std, np.float64)
        scale = (1.0 / (255.0 * std)).astype(np.float32)
        offset = (np.asarray(self.mean, np.float64) / std).astype(np.float32)
        for c, plane in enumerate(cv2.split(rgb)):
            dst = out[0, c]
            dst[...] = plane
            dst *= scale[c]
            dst -= offset[c]
        return out

    def blocks(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 (already at input size) -> 1x(H/2)x(W/2)x12 uint8, the picture in 2x2 blocks
        (see the module's docstring): each row pair's 6-byte pixel pairs, top row's then bottom
        row's, merged by OpenCV in one pass (0.18 ms at 384x384 against 0.7-0.9 ms for numpy's
        transposed copy and 0.45 ms for normalize, measured alone)."""
        h, w = rgb.shape[:2]
        pairs = rgb.reshape(h // 2, 2, w // 2, 6)        # a view: the input size is even (a multiple of 128)
        return cv2.merge([pairs[:, 0], pairs[:, 1]])[None]

    def __call__(self, rgb: np.ndarray, box: tuple[int, int, int, int] | None = None
                 ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """A frame -> (input tensor, crop box in frame pixels). `box` overrides the crop setting
        (e.g. the bounding square of a detected field of view)."""
        box = box or self.crop_box(rgb.shape[1], rgb.shape[0])
        x, y, w, h = box
        return self.normalize(self.resize_to_input(rgb[y:y + h, x:x + w])), box


def input_encoding(element: str, shape: list, pre: Preprocess) -> str:
    """How a model wants its input, from its declared input (ONNX Runtime's element type such as
    'tensor(float)', and shape; a name or None for a free dimension): 'tensor' or 'blocks'.
    ValueError('problem') for any other input (a model folder is hostile input)."""
    w, h = pre.input_size
    for encoding, element_type, dims in (("tensor", "tensor(float)", [3, h, w]),
                                         ("blocks", "tensor(uint8)", [h // 2, w // 2, 12])):
        if element == element_type and len(shape) == 4 and all(
                d is None or isinstance(d, str) or d == want for d, want in zip(shape[1:], dims)):
            return encoding
    raise ValueError(f"input {element} {list(shape)} is neither a 1x3x{h}x{w} float tensor nor the picture in "
                     f"2x2 blocks (1x{h // 2}x{w // 2}x12 uint8) for the manifest's input size {w}x{h}")


def _numbers(d: dict, key: str, count: int, kind: type) -> tuple:
    """d[key] as `count` numbers of `kind` (whole numbers for int); ValueError('key: problem')."""
    values = d[key]
    noun = "whole numbers" if kind is int else "numbers"
    if not isinstance(values, (list, tuple)) or len(values) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{key}: {_shown(values)}: expected a list of {count} {noun}")
    if kind is int:
        if not all(isinstance(v, int) or (math.isfinite(v) and v == int(v)) for v in values):
            raise ValueError(f"{key}: {_shown(values)}: expected a list of {count} {noun}")
        return tuple(int(v) for v in values)
    return tuple(float(v) for v in values)


def _shown(value: Any, limit: int = 60) -> str:
    """A value for an error line: short, one line."""
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"a list of {len(value)} values"
    try:
        text = repr(list(value) if isinstance(value, tuple) else value).replace("\n", " ")
    except RecursionError:
        return type(value).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
