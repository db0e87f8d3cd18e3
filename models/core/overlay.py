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

Pixels the model is unsure of (models.core.types.UNSURE_BIT set: `class_id | 0x80`; 255 stays the
ignore id) are drawn as what they are, a guess:
- an ordinary class's unsure pixels are transparent in fill mode (the lookup table maps every
  `id | 0x80` to transparent) and outlined dashed instead of solid in contour mode;
- a protected class (the nerve) is never dropped: its unsure pixels are hatched in its color in
  fill mode (diagonal stripes, half of every HATCH_PERIOD mask pixels; a sliver or speck that falls
  between stripes is painted whole) and outlined dashed in contour mode; on top, as its sure pixels;
- an occluder's unsure pixels keep tissue off them and off the ring around them as its sure ones
  do (the nerve's unsure pixels there are cleared, as its sure ones are).
With no unsure pixel in the mask this costs one cv2.inRange and one count; the output is then
exactly what it was before unsure pixels existed. `colorize` and `blend` (reports) draw an unsure
pixel as its class.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.types import UNSURE_BIT

MODES = ("fill", "contour")
_RING = np.ones((3, 3), np.uint8)  # one mask pixel, diagonals included: what a bilinear sample reaches
_UNSURE_MAX = 254                  # unsure ids are UNSURE_BIT..254: 255 is the ignore id, never unsure
HATCH_PERIOD = 8                   # mask pixels between the protected class's unsure stripes (fill mode)
_NEAR = np.ones((5, 5), np.uint8)  # a gap pixel this near a stripe of its region is left out; else painted


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
    """256x4 premultiplied RGBA: visible classes get their color at `alpha`, all else (unsure ids
    `id | UNSURE_BIT` included) transparent."""
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
    scaled bilinearly, bleeds onto) an occluder's pixels, shown or hidden; unsure pixels are left
    out, hatched or dashed (see the module's doc)."""
    shown = style.shown(classes)
    if not style.enabled or not shown or style.opacity <= 0:
        return None
    unsure = has_unsure(mask)                   # none: everything below draws exactly as it always did
    occluded = _occluded(mask, classes, unsure)
    if style.mode == "fill":
        lut = rgba_lut(classes, style)          # id | UNSURE_BIT -> transparent
        if unsure:
            mask, lut = _hatch_protected(mask, classes, shown, lut)
        if occluded is not None:
            mask = _clear_ring(mask, *occluded)
        return lookup_rgba(mask, lut)
    out = np.zeros(mask.shape + (4,), np.uint8)
    line_alpha = min(1.0, 0.35 + style.opacity)  # outlines stay visible at low opacity
    lut = rgba_lut(classes, style, line_alpha)
    drawn = [c for c in classes.classes if c.id != 0 and c.id in shown]
    tissue = [c for c in drawn if not c.occluder]
    for c in sorted(tissue, key=lambda c: c.protect):  # protected last: on top (sorted keeps table order)
        _outline(out, mask, c.id, lut, style.contour_px, unsure)
    if occluded is not None:
        occ, (x0, y0, x1, y1) = occluded
        near = cv2.dilate(occ, _RING)           # the occluder and one mask pixel around it
        region = out[y0:y1, x0:x1]              # a view: cleared in place, 3x faster than numpy's near > 0
        cv2.bitwise_and(region, 0, dst=region, mask=near)
    for c in drawn:
        if c.occluder:
            _outline(out, mask, c.id, lut, style.contour_px, unsure)
    return out


def lookup_rgba(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """HxW ids -> HxWx4 pixels: each id's 4-byte row of a 256x4 table, fetched as one 32-bit word
    (the bytes as they are, in any byte order). OpenCV's four-channel cv2.LUT on the mask merged
    four times gave the same bytes in 1.8 ms against 0.6-0.7 ms (a 512x512 mask, one thread)."""
    words = np.ascontiguousarray(lut, np.uint8).view(np.uint32).reshape(256)
    return np.take(words, mask).view(np.uint8).reshape(mask.shape + (4,))


def has_unsure(mask: np.ndarray) -> bool:
    """Does the mask hold a pixel the model is unsure of (UNSURE_BIT..254)? One cv2.inRange and a count."""
    return cv2.countNonZero(cv2.inRange(mask, UNSURE_BIT, _UNSURE_MAX)) > 0


def _hatch_protected(mask: np.ndarray, classes: ClassTable, shown: frozenset[int],
                     lut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill mode, a mask with unsure pixels: (mask, lut) that draw the shown protected classes'
    unsure pixels in diagonal stripes of their color, still through the one lookup table: pixels
    in the stripes' gaps become 255 (transparent), unless no striped pixel of theirs is within two
    pixels (a sliver or speck inside a gap: painted whole, so no unsure region is ever dropped).
    The caller's mask and table are not changed."""
    protected = [cid for cid in sorted(classes.protected) if cid in shown]
    if not protected:
        return mask, lut
    lut, out, gaps = lut.copy(), mask.copy(), _hatch_gaps(mask.shape)
    for cid in protected:
        lut[cid | UNSURE_BIT] = lut[cid]
        hit = cv2.compare(mask, cid | UNSURE_BIT, cv2.CMP_EQ)
        striped = cv2.dilate(cv2.subtract(hit, gaps), _NEAR)  # within two pixels of their stripes
        cv2.bitwise_and(hit, gaps, dst=hit)     # in a gap ...
        cv2.bitwise_and(hit, striped, dst=hit)  # ... near a stripe pixel of theirs: left out
        cv2.bitwise_or(out, hit, dst=out)       # 0/255: those become 255, transparent
    return out, lut


@lru_cache(maxsize=4)
def _hatch_gaps(shape: tuple[int, int]) -> np.ndarray:
    """0/255 map of the gaps between the hatch's diagonal stripes (half of every HATCH_PERIOD)."""
    h, w = shape
    diagonal = np.add.outer(np.arange(h), np.arange(w)) % HATCH_PERIOD
    gaps = np.where(diagonal >= HATCH_PERIOD // 2, 255, 0).astype(np.uint8)
    gaps.flags.writeable = False
    return gaps


def _outline(out: np.ndarray, mask: np.ndarray, class_id: int, lut: np.ndarray, px: int, unsure: bool = False) -> None:
    """The class's outline: solid around its pixels, dashed around its unsure pixels (if any)."""
    color = tuple(int(v) for v in lut[class_id])
    if unsure:
        _dashed(out, cv2.compare(mask, class_id | UNSURE_BIT, cv2.CMP_EQ), color, px)
    contours, _ = cv2.findContours((mask == class_id).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        cv2.drawContours(out, contours, -1, color, px, cv2.LINE_AA)


def _dashed(out: np.ndarray, region: np.ndarray, color: tuple[int, ...], px: int) -> None:
    """A dashed outline, `px` wide, around the nonzero pixels of `region`: dashes and gaps of
    2 * px + 2 pixels measured along each contour (so lines in any direction show them). Vectorized:
    the contour pixels of the dashes, widened by a dilation, no per-dash drawing call."""
    contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return
    points = np.concatenate(contours)[:, 0, :]
    lengths = np.array([len(c) for c in contours])
    starts = np.cumsum(lengths) - lengths
    step = np.hypot(*np.diff(points, axis=0, prepend=points[:1]).T)
    step[starts] = 0.0                          # every contour starts afresh
    along = np.cumsum(step)
    along -= np.repeat(along[starts], lengths)  # distance along its own contour
    dash = points[(along // (2 * px + 2)).astype(np.int64) % 2 == 0]
    grow = px // 2 + 1                          # only the dashes' bounding box, grown by the line's half width
    (x0, y0), (x1, y1) = np.maximum(dash.min(axis=0) - grow, 0), dash.max(axis=0) + grow + 1
    box = out[y0:y1, x0:x1]                     # a view: drawn in place
    line = np.zeros(box.shape[:2], np.uint8)
    line[dash[:, 1] - y0, dash[:, 0] - x0] = 255
    if px > 1:
        line = cv2.dilate(line, np.ones((px, px), np.uint8))
    cv2.bitwise_and(box, 0, dst=box, mask=line)  # box = color on the line (numpy's box[line > 0]: 4x slower)
    cv2.add(box, color, dst=box, mask=line)


def _occluded(mask: np.ndarray, classes: ClassTable,
              unsure: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Where the mask holds occluder pixels, sure or (`unsure`: the mask has unsure pixels) unsure:
    (0/255 map of them within `box`, box = (x0, y0, x1, y1), their bounding box grown by one pixel,
    clipped to the mask), or None when it holds none."""
    occ = None
    ids = sorted(classes.occluders) + ([cid | UNSURE_BIT for cid in sorted(classes.occluders)] if unsure else [])
    for cid in ids:  # cv2.compare: ~10x faster than a one-channel cv2.LUT at 1080p
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
    """HxW uint8 class ids -> HxWx3 uint8 RGB through a 256x3 lookup table (an unsure id,
    `id | UNSURE_BIT`, gets its class's color)."""
    index = cv2.cvtColor(labels, cv2.COLOR_GRAY2BGR)
    return cv2.LUT(index, _as_class(lut).reshape(256, 1, 3))


def blend(image: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float = 0.45,
          show: np.ndarray | None = None) -> np.ndarray:
    """Blend class colors over an RGB image where `show[label]` is true (default: ids 1..254).

    Returns a new image; pixels of hidden classes keep the image unchanged. An unsure id
    (`id | UNSURE_BIT`) is drawn as its class: its color, shown where its class is.
    """
    if show is None:
        show = np.zeros(256, bool)
        show[1:255] = True
    show = _as_class(show)
    color = colorize(labels, lut)
    mixed = cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)
    keep = ~show[labels]
    mixed[keep] = image[keep]
    return mixed


def _as_class(table: np.ndarray) -> np.ndarray:
    """A copy of a 256-row table whose unsure rows (UNSURE_BIT..254) are their classes' rows; 255 kept."""
    out = np.array(table, copy=True)
    out[UNSURE_BIT:_UNSURE_MAX + 1] = out[:_UNSURE_MAX + 1 - UNSURE_BIT]
    return out
