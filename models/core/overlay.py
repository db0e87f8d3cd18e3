"""Drawing masks: pure functions, no Qt, one module for the display and the reports.

A label map becomes colors through a lookup table: `colorize`/`blend` for reports and sheets
(cv2.LUT + cv2.addWeighted), `render_overlay` for the display, a premultiplied RGBA image (fill
or contours) that the Qt view scales smoothly onto the frame, and `composite`, its offline
counterpart (render, snapshots, recordings). Whether a mask may be painted over a frame at all
is decided by the display (app.decide.overlay_allowed).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from models.core.classes import ClassTable

MODES = ("fill", "contour")


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
    """HxW class ids -> HxWx4 premultiplied RGBA, or None when nothing would show."""
    shown = style.shown(classes)
    if not style.enabled or not shown or style.opacity <= 0:
        return None
    if style.mode == "fill":
        lut = rgba_lut(classes, style)
        return cv2.LUT(cv2.merge([mask, mask, mask, mask]), lut.reshape(256, 1, 4))
    out = np.zeros(mask.shape + (4,), np.uint8)
    line_alpha = min(1.0, 0.35 + style.opacity)  # outlines stay visible at low opacity
    lut = rgba_lut(classes, style, line_alpha)
    for c in classes.classes:
        if c.id == 0 or c.id not in shown:
            continue
        contours, _ = cv2.findContours((mask == c.id).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        if contours:
            cv2.drawContours(out, contours, -1, tuple(int(v) for v in lut[c.id]), style.contour_px, cv2.LINE_AA)
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
