"""The main window: a video view fed by the capture thread, a status line, fullscreen."""
from __future__ import annotations

import time

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import QLabel, QMainWindow, QStatusBar

from app.capture import CaptureState, CaptureThread, LatestFrame
from app.sources import Source
from app.stats import RateMeter
from app.ui.video_view import VideoView

NO_SIGNAL_AFTER_S = 0.5  # no new frame for this long: the picture is not live any more


class MainWindow(QMainWindow):
    def __init__(self, source: Source):
        super().__init__()
        self.setWindowTitle(f"EndoSpine - {source.name}")
        self.view = VideoView(self)
        self.setCentralWidget(self.view)
        self.status_label = QLabel("starting", self)
        status = QStatusBar(self)
        status.addPermanentWidget(self.status_label, 1)
        self.setStatusBar(status)
        self.resize(1280, 760)

        self.store = LatestFrame()
        self.capture = CaptureThread(source, self.store)
        self._last_id = -1
        self._last_new = time.monotonic()
        self.display_rate = RateMeter()
        self.source_rate = RateMeter()

        self._poll = QTimer(self)
        self._poll.setTimerType(Qt.TimerType.PreciseTimer)
        self._poll.timeout.connect(self._on_poll)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._update_status)

        QShortcut(QKeySequence(Qt.Key.Key_F11), self, activated=self.toggle_fullscreen)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.showNormal)
        QShortcut(QKeySequence.StandardKey.Quit, self, activated=self.close)

    def start(self) -> None:
        self.capture.start()
        self._last_new = time.monotonic()
        self._poll.start(4)
        self._status_timer.start(500)

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _on_poll(self) -> None:
        now = time.monotonic()
        frame = self.store.get_newer(self._last_id)
        if frame is not None:
            for _ in range(frame.frame_id - self._last_id):
                self.source_rate.tick(now)
            self._last_id = frame.frame_id
            self._last_new = now
            self.view.set_frame(frame.image)
            self.display_rate.tick(now)
            return
        status = self.capture.status
        if status.state in (CaptureState.ENDED, CaptureState.FAULTED):
            title = "END OF VIDEO" if status.state is CaptureState.ENDED else "NO SIGNAL"
            if (self.view.message, self.view.detail) != (title, status.message):
                self.view.set_message(title, status.message)
        elif now - self._last_new > NO_SIGNAL_AFTER_S and self.view.message != "NO SIGNAL":
            self.view.set_message("NO SIGNAL", "waiting for frames from " + self.capture.source.name)

    def _update_status(self) -> None:
        state = self.capture.status.state.value
        self.status_label.setText(
            f"{self.capture.source.name}  |  source {self.source_rate.rate():.1f} fps  |  "
            f"display {self.display_rate.rate():.1f} fps  |  frames {self._last_id + 1}  |  "
            f"skipped {self.store.overwritten}  |  capture {state}  |  AI: not loaded")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._poll.stop()
        self._status_timer.stop()
        self.capture.stop()
        super().closeEvent(event)
