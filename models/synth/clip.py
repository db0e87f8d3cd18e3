"""SyntheticClip: one procedural endoscopy clip, rendered frame by frame with exact labels.

The clip's world (label map, textures, camera path, event schedules) is built once from
(seed, clip, size). render(t) is a pure function of t on top of it: frames can be rendered in
any order or in parallel processes and the same arguments give the same bytes.
"""
from __future__ import annotations

import numbers

import cv2
import numpy as np

from models.core.errors import EndoSpineError
from models.synth.appearance import build_appearance
from models.synth.camera import Camera
from models.synth.fluid import Bubbles, Debris, Fluid
from models.synth.fov import RENDER_CAP, fov_masks, make_fov
from models.synth.instruments import draw_instruments, make_cannula, make_instruments
from models.synth.layout import build_layout
from models.synth.noise import rng_for
from models.synth.optics import Lens, Shading, View

MIN_SIZE, MAX_SIZE = 64, 8192
WORLD_SPAN = 3.8   # world side in U (view radii): room for drift and zoom-out


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise EndoSpineError(f"synthetic clip: {name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise EndoSpineError(f"synthetic clip: {name} must be {bound}, got {value}")
    return value


class SyntheticClip:
    """A synthetic lumbar endoscopy clip: render(t) -> (RGB uint8 HxWx3, labels uint8 HxW).

    Labels: the default class table's ids: 0 background (soft tissue, blood), 1 bone, 2 ligament,
    3 disc, 4 nerve (dura, nerve root), 5 fat, 6 instrument (tools and the cannula's edge), 255
    outside the field of view. `fov` is the circle (cx, cy, radius) in output pixels.
    """

    def __init__(self, seed: int, clip: int = 0, width: int = 512, height: int = 512):
        self.seed = _check_int("seed", seed, 0)
        self.clip = _check_int("clip", clip, 0)
        self.width = _check_int("width", width, MIN_SIZE, MAX_SIZE)
        self.height = _check_int("height", height, MIN_SIZE, MAX_SIZE)
        key = (self.seed, self.clip)
        fov = make_fov(rng_for(*key, "fov"), self.width, self.height)
        self.fov: tuple[float, float, float] = (fov.cx, fov.cy, fov.r)
        self._fov = fov
        x0, y0, x1, y1 = self._rect = fov.rect
        rw, rh = x1 - x0, y1 - y0
        scale = min(1.0, RENDER_CAP / max(rw, rh))
        iw, ih = max(16, round(rw * scale)), max(16, round(rh * scale))
        sx = iw / rw
        self._view = view = View.make(iw, ih, (fov.cx - x0 + 0.5) * sx - 0.5,
                                      (fov.cy - y0 + 0.5) * sx - 0.5, fov.r * sx)
        self._unit = unit = view.r
        n = int(np.ceil(WORLD_SPAN * unit)) + 2
        self._world_c = (n - 1) / 2.0
        layout = build_layout(rng_for(*key, "layout"), n, unit)
        self._world_labels = layout.labels
        self._world_rgbh = build_appearance(rng_for(*key, "appearance"), layout)
        del layout
        self._camera = Camera(rng_for(*key, "camera"), n, unit, (view.cx, view.cy))
        self._shading = Shading(rng_for(*key, "shading"), view)
        self._fluid = Fluid(rng_for(*key, "fluid"), (*key, "fluid"))
        self._bubbles = Bubbles(rng_for(*key, "bubbles"), (*key, "bubbles"))
        self._lens = Lens(rng_for(*key, "lens"), view)
        rng = rng_for(*key, "instruments")
        self._instruments = make_instruments(rng, *key)
        self._grit = rng.random((ih, iw), dtype=np.float32)
        self._cannula = make_cannula(rng_for(*key, "cannula"))
        self._debris = Debris(rng_for(*key, "debris"), (*key, "debris"))
        self._build_canvas(rng_for(*key, "canvas"))

    @property
    def notch_deg(self) -> float | None:
        """The rim's notch marker: its angle in degrees, clockwise on screen from 3 o'clock (None: no notch)."""
        return None if self._fov.notch is None else float(np.degrees(self._fov.notch[0]) % 360)

    def _build_canvas(self, rng: np.random.Generator) -> None:
        ignore, _ = fov_masks(self._fov)
        self._ignore = ignore                                   # 255 outside / notch, else 0
        self._keep = cv2.merge([255 - ignore] * 3)
        tile = rng.integers(0, 7, (64, 64, 3), dtype=np.uint8)
        reps = (self.height // 64 + 1, self.width // 64 + 1, 1)
        self._canvas = np.ascontiguousarray(np.tile(tile, reps)[: self.height, : self.width])
        x0, y0, x1, y1 = self._rect
        self._dark = cv2.bitwise_and(self._canvas[y0:y1, x0:x1], cv2.merge([ignore] * 3))

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t (0-based, nominal 30 fps): (RGB uint8 HxWx3, labels uint8 HxW)."""
        t = _check_int("frame index t", t, 0)
        v = self._view
        size = (v.w, v.h)
        m = self._camera.matrix(t)
        zoom = self._camera.pose(t)[3]
        rgbh = cv2.warpAffine(self._world_rgbh, m, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        labels = cv2.warpAffine(self._world_labels, m, size, flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_REFLECT)
        img = self._shading.apply(rgbh, zoom)
        draw_instruments(img, labels, v, self._instruments, t, self._grit)
        mul, add = self._fluid.modulation(t, v, cv2.invertAffineTransform(m), self._unit,
                                          self._world_c, self._camera.position,
                                          self._lens.vig, self._lens.gain_at(t))
        img *= mul
        img += add
        self._bubbles.apply(img, v, t)
        self._debris.apply(img, v, t)
        if self._cannula is not None:
            self._cannula.draw(img, labels, v, t, self._grit)
        rng = rng_for(self.seed, self.clip, "frame", t)
        rgb = self._lens.finish(img, t, self._camera.velocity(t), rng)

        x0, y0, x1, y1 = self._rect
        if (x1 - x0, y1 - y0) != size:
            rgb = cv2.resize(rgb, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            labels = cv2.resize(labels, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        rgb = cv2.add(cv2.bitwise_and(rgb, self._keep), self._dark)
        labels = cv2.bitwise_or(labels, self._ignore)
        frame = self._canvas.copy()
        frame[y0:y1, x0:x1] = rgb
        out_labels = np.full((self.height, self.width), 255, np.uint8)
        out_labels[y0:y1, x0:x1] = labels
        return frame, out_labels
