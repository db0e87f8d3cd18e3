"""The model's view of a frame under an endoscope profile: lens -> field of view -> crop -> color.

One object, used the same way by the app's inference worker (SegmentationRuntime), by training
(models/train/data.py) and by predict/evaluate, so a model sees at run time exactly the view it
was trained on:
1. lens: with a lens section that says `undistort`, the frame is undistorted (the model's view
   only; the surgeon's picture is not touched and masks are mapped back onto it);
2. field of view: the profile's fixed circle, or the circle found in the frame (`auto`, tracked
   across frames; a frame without one falls back to the model's own crop), or none (`off`);
3. crop: the circle's bounding square (the best use of the model's input), else the manifest's
   crop; pixels outside the circle are ignore (255) in masks and in training labels;
   the View of each frame says where its input came from, and the post-processing stage
   (models/core/runtime/postprocess.py) maps the model's output back through it;
4. color: the profile's correction, on the crop only (it is per pixel, so cropping first is
   the same picture for less work);
5. encoding: resized to the model's input and made into what the model reads: the normalized
   float tensor, or the picture's bytes in 2x2 blocks (an INT8 model that reads the picture
   itself; Preprocess.blocks).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from models.core.optics.fov import Circle, FovTracker
from models.core.optics.lens import Undistorter
from models.core.optics.profile import Profile, default_profile
from models.core.runtime.preprocess import ENCODINGS, Preprocess

log = logging.getLogger("endospine.profile")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class View:
    """Where the model's input of one frame came from."""
    box: Box                       # the region of the frame as received that a mask covers
    crop: Box                      # the model's crop, in working-frame pixels (undistorted if a lens applies)
    circle: Circle | None          # the field of view, in working-frame pixels
    lens: Undistorter | None       # None: the working frame is the frame itself


class FramePrep:
    """A profile applied to frames. `independent=True` for datasets: the field of view is found
    anew in every image instead of being tracked (and smoothed) across frames."""

    def __init__(self, profile: Profile | None, pre: Preprocess, independent: bool = False,
                 encoding: str = "tensor"):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {tuple(ENCODINGS)}, got {encoding!r}")
        self.profile = profile or default_profile()
        self.pre = pre
        self.encode = pre.normalize if encoding == "tensor" else pre.blocks   # input-size RGB -> model input
        self.color = self.profile.color.correction()
        lens = self.profile.lens
        self._lens = lens if lens is not None and lens.undistort else None
        self._undistorters: dict[tuple[int, int], Undistorter | None] = {}
        mode = self.profile.fov.mode
        self.tracker = None if mode == "off" else (FovTracker(every=1, smoothing=0.0) if independent else FovTracker())
        self._warned: set[tuple[int, int]] = set()

    # -- geometry ------------------------------------------------------------------------------
    def undistorter(self, size: tuple[int, int]) -> Undistorter | None:
        """The lens undistortion for frames of `size`, or None (no lens, or frames of another shape)."""
        if self._lens is None:
            return None
        if size not in self._undistorters:
            fits = self._lens.fits(size)
            if not fits:
                log.warning("lens calibrated on %dx%d frames; %dx%d frames are used without undistortion",
                            *self._lens.image_size, *size)
            self._undistorters[size] = Undistorter(self._lens, size) if fits else None
        return self._undistorters[size]

    def circle(self, size: tuple[int, int], working: Callable[[], np.ndarray]) -> Circle | None:
        """The field of view in working-frame pixels; `working()` gives the working frame and is
        called only when a detection needs it (undistorting a whole frame is the costly part)."""
        w, h = size
        fov = self.profile.fov
        if fov.mode == "fixed":
            fixed = fov.circle_for(w, h)
            if fixed is not None:
                return fixed
            if (w, h) not in self._warned:
                self._warned.add((w, h))
                log.warning("profile circle measured on %dx%d frames; detecting it in %dx%d frames instead",
                            *fov.frame_size, w, h)
        if self.tracker is None:
            return None
        return self.tracker.update(working() if self.tracker.due else None)

    # -- the model's input ---------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, View]:
        """A frame -> (model input, View): 1x3xHxW float32, or 1x(H/2)x(W/2)x12 uint8 blocks."""
        h, w = rgb.shape[:2]
        und = self.undistorter((w, h))
        circle = self.circle((w, h), (lambda: und.frame(rgb)) if und is not None else (lambda: rgb))
        crop = circle.box(w, h) if circle is not None else self.pre.crop_box(w, h)
        x, y, cw, ch = crop
        region = und.region(rgb, crop) if und is not None else rgb[y:y + ch, x:x + cw]
        if self.color is not None:
            region = self.color(region)
        tensor = self.encode(self.pre.resize_to_input(region))
        box = und.raw_box(crop) if und is not None else crop
        return tensor, View(box, crop, circle, und)

    # -- training ------------------------------------------------------------------------------
    def training_view(self, image: np.ndarray, label: np.ndarray, ignore_index: int = 255
                      ) -> tuple[np.ndarray, np.ndarray]:
        """An image and its label map cut the way frames are cut at run time: undistorted (labels
        nearest), cropped to the field of view's square, outside the circle ignore, colors
        corrected. The picture stays at the crop's resolution (augmentation resizes it)."""
        und = self.undistorter((image.shape[1], image.shape[0]))
        if und is not None:
            image, label = und.frame(image), und.labels(label, ignore_index)
        h, w = image.shape[:2]
        circle = self.circle((w, h), lambda: image)
        x, y, cw, ch = circle.box(w, h) if circle is not None else self.pre.crop_box(w, h)
        image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        if circle is not None:
            label = label.copy()
            label[circle.outside((x, y, cw, ch), (cw, ch))] = ignore_index
        if self.color is not None:
            image = self.color(image)
        return image, label
