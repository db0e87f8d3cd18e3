"""What a written frame keeps, frame after frame: the one rule of the recorder (app/recorder.py) and
`endospine render` (app/render.py), on top of models/core/deid.py. No Qt.

`FrameKeeper(policy)` is called once per frame, in order, with the frame as received (the circle is
found in it: the policy's region or fixed circle, else detected every 10 frames and held, as
DeidPolicy.finder() does) and returns a `Kept`: the mask to apply to the pictures written for that
frame (raw, overlay), and what goes into the frame's CSV row (`FOV_COLUMNS`): frame_region `fov`
(the field of view only), `black` (no circle known yet: the whole frame black, counted in
`black_frames`) or `full` (the policy keeps whole frames), and the circle fov_cx, fov_cy, fov_r.
The model is not concerned: it still sees the whole frame; only the pixels written are masked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.core.deid import DeidPolicy, KeepMask
from models.core.optics.fov import Circle

FOV_COLUMNS = ("frame_region", "fov_cx", "fov_cy", "fov_r")  # the per-frame CSV's columns for it


@dataclass(frozen=True)
class Kept:
    """What one frame's written pictures keep."""
    region: str                 # fov, black or full
    circle: Circle | None       # the field of view kept (None: black or full)
    mask: KeepMask | None       # None: the whole frame is kept (full)

    def apply(self, image: np.ndarray, reuse: bool = False) -> np.ndarray:
        """`image` (of the mask's size) as written: the field of view only, or the whole of it
        (contiguous either way). reuse: as KeepMask.apply (only where the result is written at once)."""
        return self.mask.apply(image, reuse=reuse) if self.mask is not None else np.ascontiguousarray(image)

    def columns(self, circle: Circle | None = None) -> list[str]:
        """The row's FOV_COLUMNS values; circle: the circle in the written picture's pixels, if not
        the frame's own (a frame scaled to fit the video)."""
        c = circle or self.circle
        return [self.region, *((f"{c.cx:.2f}", f"{c.cy:.2f}", f"{c.r:.2f}") if c is not None else ("", "", ""))]


class FrameKeeper:
    """Per frame, in order: the circle and the mask the written pictures keep (see the module)."""

    def __init__(self, policy: DeidPolicy):
        self.policy = policy
        self._finder = policy.finder()
        self._blackout = policy.blackout()   # the mask is remade only when the size or the circle changes
        self.black_frames = 0                # frames written all black: no field of view known yet

    @property
    def circle(self) -> Circle | None:
        """The field of view kept for the last frame (None before any, or for full frames)."""
        return self._finder.last

    def __call__(self, image: np.ndarray, size: tuple[int, int] | None = None) -> Kept:
        """For the frame `image` as received; size: the (w, h) of the pictures written for it (the
        frame trimmed to even sides; default the image's own)."""
        if self.policy.keep_full_frame:
            return Kept("full", None, None)
        circle = self._finder(image)
        mask = self._blackout.mask_for(size or (image.shape[1], image.shape[0]), circle)
        self.black_frames += circle is None
        return Kept("fov" if circle is not None else "black", circle, mask)
