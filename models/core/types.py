"""Hand-off types between the stages: a captured Frame in, an inference Result out.

Every stage passes these; nothing else crosses a stage boundary. Class ids match
assets/classes.yaml (checked by a test).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class ClassId(IntEnum):
    BACKGROUND = 0
    BONE = 1
    LIGAMENT = 2
    DISC = 3
    NERVE = 4        # dura and nerve root: the protected class
    FAT = 5          # epidural fat
    INSTRUMENT = 6   # an occluder, not tissue
    IGNORE = 255


TISSUES = (ClassId.BONE, ClassId.LIGAMENT, ClassId.DISC, ClassId.NERVE, ClassId.FAT)


@dataclass(frozen=True)
class Frame:
    """One source image.

    frame_id: strictly increasing per source session (0, 1, 2, ...).
    capture_time: time.monotonic() seconds when the frame arrived from the source.
    pts: presentation time in seconds within the source (None for live devices without one).
    image: HxWx3 uint8 RGB, C-contiguous.
    """

    frame_id: int
    capture_time: float
    pts: float | None
    image: np.ndarray

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 uint8 RGB, got {img.dtype} {img.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[1], self.image.shape[0]


UNSURE_BIT = 0x80  # in a mask: this pixel's class is below the model's confidence threshold (class ids < 127)


@dataclass(frozen=True)
class Result:
    """The model's answer for one frame.

    mask: HxW uint8 class ids (255 = ignore/outside the field of view), at any resolution;
          the display scales it onto `box`.
    timings: per-stage milliseconds, e.g. {"preprocess": 2.1, "predict": 11.8, "postprocess": 1.0}.
    box: the region (x, y, w, h) of the frame, in frame pixels, that the mask covers
         (None: the whole frame).
    capture_time: the frame's capture_time (time.monotonic() seconds), for staleness checks.
    score: the frame's out-of-distribution score from the model's gate (models/core/runtime/gate.py;
           higher = less like the training frames); None: the model has no gate.
    unsure: the gate's verdict after its hysteresis: the scene has been unlike the training data
            for several frames, so no mask may be painted (the display shows AI UNSURE instead).

    A mask value with UNSURE_BIT set is a pixel the model is unsure of: the class id is
    `value & ~UNSURE_BIT` (value 255 is always the ignore id, never an unsure class).
    """

    frame_id: int
    mask: np.ndarray
    model_id: str
    timings: dict[str, float] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None
    capture_time: float | None = None
    score: float | None = None
    unsure: bool = False

    def __post_init__(self) -> None:
        if self.mask.dtype != np.uint8 or self.mask.ndim != 2:
            raise ValueError(f"Result.mask must be HxW uint8, got {self.mask.dtype} {self.mask.shape}")

    @property
    def total_ms(self) -> float:
        return float(sum(self.timings.values()))
