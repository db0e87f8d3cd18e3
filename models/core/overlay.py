"""Drawing masks: pure functions, no Qt, one module for the display and the reports.

A label map becomes colors through a lookup table: `colorize`/`blend` for reports and sheets
(cv2.LUT + cv2.addWeighted), `render_overlay` for the display, a premultiplied RGBA image (fill
or contours) that the Qt view scales smoothly onto the frame, and `composite`, its offline
counterpart (render, snapshots, recordings). Whether a mask may be painted over a frame at all
is decided by the display (app.decide.overlay_allowed).

The class table's drawing roles (models.core.classes):
- protected classes (`protect`, the nerve) are drawn last in contour mode, so their outline is on
  top where outlines overlap (fill mode: every pixel has one class already);
- no other class's color lands on an occluder's pixels (`occluder`, the instrument), shown or
  hidden. The label map is exclusive, but the RGBA at mask size is scaled bilinearly onto the
  frame, and a bilinear sample mixes the 2x2 mask pixels around it: colors bleed by up to one
  mask pixel. So the other classes are left transparent within one mask pixel (8-neighbourhood)
  of an occluder (fill), and their outlines are cleared over the occluder and that ring
  (contour). With no occluder pixel in the mask this costs one lookup and one count.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from models.core.classes import ClassTable

MODES = ("fill", "contour")
_RING = np.ones((3, 3), np.uint8)  # one mask pixel, diagonals included: what a bilinear sample reaches


@dataclass(frozen=True)
class OverlayStyle:
    """How masks are drawn. `visible`: the class ids painted; None (the default) means the class
    table's own default (ClassTable.default_visible), looked up when drawing. The display starts
    from `OverlayStyle.for_classes(table)`, a concrete set that the user then toggles."""

    opacity: float = 0.45
    mode: str = "fill"
    visible: frozenset[int] | None = None
    enabled: bool = True          # the all-overlay switch (space / O)
    contour_px: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError("opacity must be in [0, 1]")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")

    @classmethod
    def for_classes(cls, classes: ClassTable, **settings) -> "OverlayStyle":
        """The starting style for this class table: its default-visible classes shown."""
        return cls(visible=classes.default_visible, **settings)

    def shown(self, classes: ClassTable) -> frozenset[int]:
        """The class ids painted when drawing with this table."""
        return classes.default_visible if self.visible is None else self.visible

    def toggled(self, class_id: int) -> "OverlayStyle":
        if self.visible is None:
            raise ValueError("toggling needs the classes shown: start from OverlayStyle.for_classes(table)")
        return replace(self, visible=self.visible ^ {class_id})


def rgba_lut(classes: ClassTable, style: OverlayStyle, alpha: float | None = None) -> np.ndarray:
    """256x4 premultiplied RGBA: visible classes get their color at `alpha`, all else transparent."""
    a = style.opacity if alpha is None else alpha
    lut = np.zeros((256, 4), np.uint8)
    if not style.enabled:
        return lut
    shown = style.shown(classes)
    for c in classes.classes:
        if c.id in shown and c.id != 0:
            lut[c.id, :3] = np.rint(np.asarray(c.color) * a)
            lut[c.id, 3] = round(255 * a)
    return lut


def render_overlay(mask: np.ndarray, classes: ClassTable, style: OverlayStyle) -> np.ndarray | None:
    """HxW class ids -> HxWx4 premultiplied RGBA, or None when nothing would show.

    Protected classes are drawn on top; nothing but an occluder's own color lands on (or, once
    scaled bilinearly, bleeds onto) an occluder's pixels, shown or hidden (see the module's doc)."""
    shown = style.shown(classes)
    if not style.enabled or not shown or style.opacity <= 0:
        return None
    occluded = _occluded(mask, classes)
    if style.mode == "fill":
        lut = rgba_lut(classes, style)
        if occluded is not None:
            mask = _clear_ring(mask, *occluded)
        return cv2.LUT(cv2.merge([mask, mask, mask, mask]), lut.reshape(256, 1, 4))
    out = np.zeros(mask.shape + (4,), np.uint8)
    line_alpha = min(1.0, 0.35 + style.opacity)  # outlines stay visible at low opacity
    lut = rgba_lut(classes, style, line_alpha)
    drawn = [c for c in classes.classes if c.id != 0 and c.id in shown]
    tissue = [c for c in drawn if not c.occluder]
    for c in sorted(tissue, key=lambda c: c.protect):  # protected last: on top (sorted keeps table order)
        _outline(out, mask, c.id, lut, style.contour_px)
    if occluded is not None:
        occ, (x0, y0, x1, y1) = occluded
        near = cv2.dilate(occ, _RING)           # the occluder and one mask pixel around it
        region = out[y0:y1, x0:x1]              # a view: cleared in place, 3x faster than numpy's near > 0
        cv2.bitwise_and(region, 0, dst=region, mask=near)
    for c in drawn:
        if c.occluder:
            _outline(out, mask, c.id, lut, style.contour_px)
    return out


def _outline(out: np.ndarray, mask: np.ndarray, class_id: int, lut: np.ndarray, px: int) -> None:
    contours, _ = cv2.findContours((mask == class_id).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        cv2.drawContours(out, contours, -1, tuple(int(v) for v in lut[class_id]), px, cv2.LINE_AA)


def _occluded(mask: np.ndarray, classes: ClassTable) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Where the mask holds occluder pixels: (0/255 map of them within `box`, box = (x0, y0, x1, y1),
    their bounding box grown by one pixel, clipped to the mask), or None when it holds none."""
    occ = None
    for cid in sorted(classes.occluders):  # cv2.compare: ~10x faster than a one-channel cv2.LUT at 1080p
        hit = cv2.compare(mask, cid, cv2.CMP_EQ)
        occ = hit if occ is None else cv2.bitwise_or(occ, hit, dst=occ)
    if occ is None or not cv2.countNonZero(occ):
        return None
    x, y, w, h = cv2.boundingRect(occ)
    x0, y0 = max(0, x - 1), max(0, y - 1)
    x1, y1 = min(mask.shape[1], x + w + 1), min(mask.shape[0], y + h + 1)
    return occ[y0:y1, x0:x1], (x0, y0, x1, y1)


def _clear_ring(mask: np.ndarray, occ: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A copy of `mask` whose pixels within one pixel of an occluder (the occluder's own excepted)
    hold 255: never a class id, so transparent in any RGBA lookup table."""
    x0, y0, x1, y1 = box
    ring = cv2.dilate(occ, _RING)
    cv2.bitwise_xor(ring, occ, dst=ring)        # occ lies inside its dilation: the ring alone
    out = mask.copy()
    region = out[y0:y1, x0:x1]
    region |= ring
    return out


def composite(frame: np.ndarray, rgba: np.ndarray | None, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A new RGB image: `rgba` (premultiplied) scaled smoothly onto `box` of `frame` and blended.

    The offline counterpart of what the Qt view paints (render, snapshots, reports).
    """
    out = frame.copy()
    if rgba is None:
        return out
    x, y, w, h = box if box is not None else (0, 0, frame.shape[1], frame.shape[0])
    if rgba.shape[:2] != (h, w):
        rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_LINEAR)
    region = out[y:y + h, x:x + w]
    keep = (255 - rgba[..., 3:4]).astype(np.uint16)
    region[:] = ((region.astype(np.uint16) * keep + 127) // 255 + rgba[..., :3]).clip(0, 255).astype(np.uint8)
    return out

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
