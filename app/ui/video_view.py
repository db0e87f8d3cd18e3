"""The video widget: paints the newest frame scaled to fit (aspect kept), or a NO SIGNAL screen."""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget


class VideoView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(320, 180)
        self._image: np.ndarray | None = None  # keeps the buffer the QImage points into alive
        self._qimage: QImage | None = None
        self._message = "NO SIGNAL"
        self._detail = ""

    def set_frame(self, image: np.ndarray) -> None:
        """Show an HxWx3 uint8 RGB image. It must not be modified afterwards (frames are immutable)."""
        h, w = image.shape[:2]
        self._image = image
        self._qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)
        self._message = ""
        self.update()

    def set_message(self, message: str, detail: str = "") -> None:
        """Replace the picture with a message screen (NO SIGNAL, errors)."""
        self._message, self._detail = message, detail
        self._image = self._qimage = None
        self.update()

    @property
    def message(self) -> str:
        return self._message

    @property
    def detail(self) -> str:
        return self._detail

    def video_rect(self) -> QRectF:
        """Where the frame lands in the widget: scaled to fit, centered, aspect kept."""
        if self._qimage is None:
            return QRectF(self.rect())
        iw, ih = self._qimage.width(), self._qimage.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._qimage is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(self.video_rect(), self._qimage)
        else:
            self._paint_message(painter)
        painter.end()

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
