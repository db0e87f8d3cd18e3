"""Hand-off types between the stages: a captured Frame in, an inference Result out.

Every stage passes these; nothing else crosses a stage boundary. Class ids match
assets/classes.yaml (checked by a test).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.core.picture import Planes


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
    image: HxWx3 uint8 RGB, C-contiguous: the picture the display shows and the model sees.
    full: the source's full-resolution picture in its own pixel layout (models.core.picture.Planes),
          when `image` is a reduced view of it (a 4K source on a smaller screen); None: `image`
          is the full picture. Recordings, snapshots and rendered videos use `full_rgb()`.
    A file's frames are lent from its decoder's shared memory (read-only, no copy; the slot goes
    back when the frame is dropped): whatever keeps frames for long keeps `own()` copies.
    """

    frame_id: int
    capture_time: float
    pts: float | None
    image: np.ndarray
    full: "Planes | None" = None

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Frame.image must be HxWx3 uint8 RGB, got {img.dtype} {img.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of `image`."""
        return self.image.shape[1], self.image.shape[0]

    @property
    def full_size(self) -> tuple[int, int]:
        """(width, height) of the source's picture: `full`'s, else `image`'s."""
        return self.full.size if self.full is not None else self.size

    def full_rgb(self) -> np.ndarray:
        """The source's picture at full resolution as HxWx3 uint8 RGB (`image` itself when it is)."""
        return self.full.rgb() if self.full is not None else self.image

    def own(self) -> "Frame":
        """This frame with pixels of its own: copies of pixels lent from a decoder's shared memory
        (models.core.child.Loan), which must go back soon; the frame itself when none are lent."""
        image_lent = _lent(self.image)
        full_lent = self.full is not None and _lent(self.full.data)
        if not (image_lent or full_lent):
            return self
        return replace(self, image=self.image.copy() if image_lent else self.image,
                       full=replace(self.full, data=self.full.data.copy()) if full_lent else self.full)

    def to_full(self, box: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        """A box in `image` pixels (a mask's) in full-resolution pixels."""
        if box is None or self.full is None:
            return box
        sx, sy = self.full.size[0] / self.image.shape[1], self.full.size[1] / self.image.shape[0]
        x, y, w, h = box
        return round(x * sx), round(y * sy), round(w * sx), round(h * sy)


def _lent(array: np.ndarray) -> bool:
    """Whether `array`'s memory is lent (a models.core.child.Loan at the end of its bases)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return bool(getattr(base, "lent", False))


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
