"""The video widget: the newest frame scaled to fit (aspect kept), the tissue overlay on top of
it (smoothly scaled onto the frame region it covers), a status badge, or a NO SIGNAL screen."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from PyQt6.QtCore import QPoint, QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget

from models.core.costs import STAGES
from models.core.picture import scale_to
from models.core.timing import DEFAULT_TIMING

SNAP_PX = 4  # a frame within this many device pixels of the size it would be drawn at is drawn 1:1


class VideoView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(320, 180)
        self._image: np.ndarray | None = None  # keeps the buffer the QImage points into alive
        self._qimage: QImage | None = None
        self._scaled: tuple | None = None  # the frame resized to the widget, once per frame and size
        self._message = "NO SIGNAL"
        self._detail = ""
        self._overlay: np.ndarray | None = None
        self._overlay_qimage: QImage | None = None
        self._overlay_box: tuple[int, int, int, int] | None = None
        self._overlay_scaled: tuple | None = None  # the mask resized to its place, once per mask and size
        self._badge = ""
        self._frame_meta: tuple[int, float] = (-1, 0.0)
        self._mask_meta: tuple[int | None, float | None] = (None, None)
        self.probe = None  # an app.stats.PaintProbe to measure what is painted (benchmarks)
        # Called before painting a frame that was set more than lagged_paint_s ago (a frame is
        # normally painted within milliseconds of being set): the GUI thread was busy since (a
        # stall), so the owner can put the newest frame up first instead of painting an old one
        # once (MainWindow polls its frame store here).
        self.before_lagged_paint: Callable[[], None] | None = None
        self.lagged_paint_s = DEFAULT_TIMING.lagged_paint_s
        self._set_at = 0.0

    def set_frame(self, image: np.ndarray, frame_id: int = -1, capture_time: float = 0.0) -> None:
        """Show an HxWx3 uint8 RGB image. It must not be modified afterwards (frames are immutable)."""
        h, w = image.shape[:2]
        self._frame_meta = (frame_id, capture_time)
        self._set_at = time.monotonic()
        self._image = image
        self._qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)
        self._scaled = None
        self._message = ""
        self.update()

    def set_message(self, message: str, detail: str = "") -> None:
        """Replace the picture with a message screen (NO SIGNAL, errors). Hides the overlay."""
        self._message, self._detail = message, detail
        self._image = self._qimage = self._scaled = None
        self.set_overlay(None)
        self.update()

    def set_overlay(self, rgba: np.ndarray | None, box: tuple[int, int, int, int] | None = None,
                    mask_frame_id: int | None = None, mask_time: float | None = None) -> None:
        """Premultiplied RGBA to paint over `box` (frame pixels; None = whole frame), or None to hide.

        mask_frame_id / mask_time say which frame the mask was computed from (for the paint probe).
        """
        self._overlay = rgba
        self._mask_meta = (mask_frame_id, mask_time) if rgba is not None else (None, None)
        self._overlay_box = box
        self._overlay_scaled = None
        if rgba is None:
            self._overlay_qimage = None
        else:
            h, w = rgba.shape[:2]
            self._overlay_qimage = QImage(rgba.data, w, h, rgba.strides[0], QImage.Format.Format_RGBA8888_Premultiplied)
        self.update()

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_qimage is not None and self._qimage is not None

    def set_badge(self, text: str) -> None:
        """A short status line drawn over the top-left of the picture ('' hides it)."""
        if text != self._badge:
            self._badge = text
            self.update()

    @property
    def badge(self) -> str:
        return self._badge

    @property
    def message(self) -> str:
        return self._message

    @property
    def detail(self) -> str:
        return self._detail

    def video_rect(self) -> QRectF:
        """Where the frame lands in the widget: scaled to fit, centered, aspect kept; at its own
        size when that is within SNAP_PX device pixels of the fit (a view made for this widget,
        `--view-size`, whose sides were rounded to even numbers), so it is drawn as it is."""
        if self._qimage is None:
            return QRectF(self.rect())
        iw, ih = self._qimage.width(), self._qimage.height()
        s = min(self.width() / iw, self.height() / ih)
        dpr = self.devicePixelRatioF()
        if (abs(s * dpr - 1) * max(iw, ih) <= SNAP_PX and iw <= self.width() * dpr
                and ih <= self.height() * dpr):
            s = 1 / dpr
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def device_video_size(self) -> tuple[int, int] | None:
        """(w, h) in device pixels of where the frame is drawn (None: no frame yet): the size a
        source's view would need to be drawn without resizing (`--view-size`)."""
        return self._device_rect(self.video_rect())[2:] if self._qimage is not None else None

    def _device_rect(self, target: QRectF) -> tuple[int, int, int, int]:
        """`target` rounded to whole device pixels: (x0, y0, w, h)."""
        dpr = self.devicePixelRatioF()  # a HiDPI OR monitor: its device pixels, not logical ones
        x0, y0 = round(target.left() * dpr), round(target.top() * dpr)
        return x0, y0, max(1, round(target.right() * dpr) - x0), max(1, round(target.bottom() * dpr) - y0)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        with STAGES.measure("paint"):
            self._paint_event()

    def _paint_event(self) -> None:
        if (self.before_lagged_paint is not None and self._qimage is not None
                and time.monotonic() - self._set_at > self.lagged_paint_s):
            self._set_at = time.monotonic()  # once per lag: a paused replay does not poll on every paint
            self.before_lagged_paint()       # may set a newer frame or a message; painted below
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._qimage is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            rect = self.video_rect()
            at, self._scaled = self._at_device_pixels(self._image, rect, QImage.Format.Format_RGB888,
                                                      "view_resize", self._scaled)
            painter.drawImage(at, self._scaled[2])
            if self._overlay_qimage is not None:
                at, self._overlay_scaled = self._at_device_pixels(
                    self._overlay, self._frame_to_widget(rect, self._overlay_box),
                    QImage.Format.Format_RGBA8888_Premultiplied, "overlay_resize", self._overlay_scaled)
                painter.drawImage(at, self._overlay_scaled[2])
            if self._badge:
                self._paint_badge(painter, rect)
        else:
            self._paint_message(painter)
        painter.end()
        if self.probe is not None and self._qimage is not None:
            mask = self._mask_meta if self._overlay_qimage is not None else (None, None)
            self.probe.on_paint(time.monotonic(), *self._frame_meta, *mask)

    def _at_device_pixels(self, image: np.ndarray, target: QRectF, fmt: QImage.Format, stage: str,
                          cached: tuple | None) -> tuple[QPointF, tuple]:
        """`image` resized to `target` rounded to whole device pixels, to be drawn 1:1 there:
        (where to draw it, (device rectangle, pixels, QImage)). `cached`, the last answer for this
        image, is reused while the device rectangle stays, so a frame or a mask is resized once
        per size, not on every paint.

        Frame: letting QPainter scale the 1080p frame on every paint kept the GUI thread busy
        most of the time (raw latency p50 23 ms, p99 46-52 ms; `endospine bench`, old and new
        alternating); OpenCV's resize once per frame gave p50 17 ms, p99 28 ms. Overlay:
        QPainter's smooth scaling cost 3.9 ms of CPU per paint (a 512-pixel mask onto 731
        pixels), OpenCV's bilinear resize of the premultiplied pixels 1.4 ms once per mask, and
        drawing 1:1 0.5 ms per paint. Whole device pixels: at a fractional place QPainter would
        resample the image (smoothly, in its thread pool) on every paint. Scaled as the decoder
        scales views (models.core.picture.scale_to): bilinear for magnification and mild
        reduction (an endoscope image is soft), halved by area averaging first below half size,
        where bilinear alone would alias. Converting the frame to the backing store's 32-bit
        layout here was measured against leaving that to Qt (its thread pool): the same CPU for
        the display process at 1080p60 and a busier GUI thread (raw p99 38 against 33 ms), so Qt
        does it.
        """
        dpr = self.devicePixelRatioF()
        x0, y0, w, h = self._device_rect(target)
        if cached is None or cached[0] != (x0, y0, w, h):
            if image.shape[:2] == (h, w):   # already the size it is drawn at (--view-size): as it is
                scaled = image
            else:
                with STAGES.measure(stage):
                    scaled = scale_to(image, w, h)
            q = QImage(scaled.data, w, h, scaled.strides[0], fmt)
            q.setDevicePixelRatio(dpr)
            cached = ((x0, y0, w, h), scaled, q)
        return QPointF(x0 / dpr, y0 / dpr), cached

    def _frame_to_widget(self, rect: QRectF, box: tuple[int, int, int, int] | None) -> QRectF:
        if box is None:
            return rect
        s = rect.width() / self._qimage.width()
        x, y, w, h = box
        return QRectF(rect.x() + x * s, rect.y() + y * s, w * s, h * s)

    def _paint_badge(self, painter: QPainter, rect: QRectF) -> None:
        font = QFont(self.font())
        font.setPointSize(max(12, self.height() // 45))
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        box = metrics.boundingRect(self._badge).adjusted(-10, -6, 10, 6)
        box.moveTopLeft(rect.topLeft().toPoint() + QPoint(12, 12))
        painter.fillRect(box, QColor(0, 0, 0, 190))
        painter.setPen(QColor(255, 200, 0))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self._badge)

    def _paint_message(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSize(max(18, self.height() // 14))
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(255, 210, 0))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._message)
        if self._detail:
            small = QFont(self.font())
            small.setPointSize(max(11, self.height() // 40))
            painter.setFont(small)
            painter.setPen(QColor(230, 230, 230))
            rect = self.rect().adjusted(20, self.height() // 2 + 40, -20, -20)
            painter.drawText(rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                             self._detail)
