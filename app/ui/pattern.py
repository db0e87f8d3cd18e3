"""`endospine pattern`: the latency loopback pattern, full screen, redrawn every display refresh.

Each paint encodes a frame counter and the CLOCK_MONOTONIC milliseconds of that paint
(models/core/optics/loopback.py). A camera filming this screen feeds the capture card, and
`endospine-calibrate latency` (which starts this window as its own process) reads the pattern
back from the captured frames.
"""
from __future__ import annotations

import sys
import time

from PyQt6.QtCore import QRect, Qt, QTimer
from PyQt6.QtGui import QColor, QImage, QPainter
from PyQt6.QtWidgets import QApplication, QWidget

from app.ui.run import place_on_screen
from models.core.optics.loopback import GRID_COLS, GRID_ROWS, encode

HINT = "EndoSpine latency pattern: film this screen with the camera on the capture card.  Esc closes."


class PatternWindow(QWidget):
    """Black window with the pattern as large as fits; a new code on every refresh."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("EndoSpine latency pattern")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.BlankCursor)
        self.counter = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.update)

    def start(self) -> None:
        """Repaint at the screen's refresh rate (a paint that misses a refresh shows one later)."""
        screen = self.screen()
        hz = screen.refreshRate() if screen is not None and screen.refreshRate() > 1 else 60.0
        self._timer.start(max(1, int(1000.0 / hz)))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        grid = encode(self.counter, int(round(time.monotonic() * 1000)))
        self.counter += 1
        image = QImage(grid.data, GRID_COLS, GRID_ROWS, GRID_COLS, QImage.Format.Format_Grayscale8)
        cell = max(1, min(self.width() // GRID_COLS, (self.height() - 24) // GRID_ROWS))
        w, h = cell * GRID_COLS, cell * GRID_ROWS
        target = QRect((self.width() - w) // 2, (self.height() - 24 - h) // 2, w, h)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        painter.drawImage(target, image)  # no smoothing hint: cells stay sharp squares
        painter.setPen(QColor(90, 90, 90))
        painter.drawText(QRect(0, self.height() - 22, self.width(), 20), Qt.AlignmentFlag.AlignCenter, HINT)
        painter.end()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Q):
            self.close()
        else:
            super().keyPressEvent(event)


def run_pattern(screen: int | None = None, windowed: bool = False, quit_after: float | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("EndoSpine pattern")
    window = PatternWindow()
    place_on_screen(window, screen)
    if windowed:
        window.resize(960, 600)
        window.show()
    else:
        window.showFullScreen()
    window.start()
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), window.close)
    return app.exec()
