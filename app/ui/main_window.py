"""The main window: video view fed by the capture thread, AI overlay from the worker, side panel.

The GUI thread only polls: the newest frame from the capture store and the newest result from
the inference client. Nothing queues up as Qt events, and neither capture nor the AI ever waits
for the GUI.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence, QShortcut
from PyQt6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QMainWindow, QStatusBar, QVBoxLayout, QWidget

from app.capture_thread import CaptureState, CaptureThread, LatestFrame
from app.ai.supervisor import AIState, InferenceClient, WorkerConfig
from models.core.overlay import OverlayStyle, overlay_allowed, render_overlay
from app.recorder import Recorder, snapshot
from models.core.sources.base import Source
from app.stats import RateMeter
from app.ui.controls import ControlPanel
from app.ui.replay import ReplayBar
from app.ui.video_view import VideoView
from models.core.sources.video import VideoSource
from models.core.classes import ClassTable, default_classes
from models.core.errors import EndoSpineError
from models.core.runtime.manifest import load_manifest
from models.core.types import Frame, Result

NO_SIGNAL_AFTER_S = 0.4  # no new frame for this long (or 2.5 frame intervals if longer): not live any more


class MainWindow(QMainWindow):
    # the user chose another video or model: (source spec, model folder or "" for none)
    reopen_requested = pyqtSignal(str, str, str)  # source, model folder, endoscope profile ('' = none)

    def __init__(self, source: Source, worker: WorkerConfig | None = None, output_dir: Path | None = None,
                 settings=None, review: bool = False):
        """settings: a QSettings to remember the display choices in (None: remember nothing).
        review: frame-exact replay, each frame waits for its own mask (slower than real time if
        the model is)."""
        super().__init__()
        self.settings = settings
        self.output_dir = Path(output_dir) if output_dir else Path.home() / "EndoSpine"
        self.recorder: Recorder | None = None
        self.setWindowTitle(f"EndoSpine - {source.name}")
        self.classes = _classes_of(worker)
        self.style = self._remembered_style()
        self.view = VideoView(self)
        self.view.before_lagged_paint = self._on_poll  # after a GUI stall, paint the newest frame, not the old one
        self.panel = ControlPanel(self.classes, self.style, self)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        row = QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(self.view, 1)
        row.addWidget(self.panel)
        column.addLayout(row, 1)
        replayable = isinstance(source, VideoSource) and not source.is_stream
        self.replay = ReplayBar(source, central) if replayable else None
        if self.replay is not None:
            column.addWidget(self.replay)
        self.setCentralWidget(central)
        self.status_label = QLabel("starting", self)
        status = QStatusBar(self)
        status.addPermanentWidget(self.status_label, 1)
        self.setStatusBar(status)
        self.resize(1440, 860)

        self.store = LatestFrame()
        self.ai = InferenceClient(worker, self.store) if worker else None
        self.review = review and self.ai is not None
        self.capture = CaptureThread(source, self.store, gate=self._wait_for_mask if self.review else None)
        if self.ai is None:
            self.panel.ai_box.setChecked(False)
            self.panel.ai_box.setEnabled(False)
        self.frame: Frame | None = None
        self._held: Frame | None = None  # review mode: captured, waiting for its mask
        self._shown = threading.Condition()  # review mode: the GUI tells capture what is on screen
        self._shown_id = -1
        self._last_new = time.monotonic()
        self._drawn: tuple[Result, OverlayStyle] | None = None
        self.overlay_age_ms: float | None = None
        self.display_rate = RateMeter()
        self._shown_last = -1           # id of the newest frame ever put on screen (never reset)
        self._seen_result: Result | None = None  # the AI result the overlay was last decided for
        self._captured = (time.monotonic(), 0)  # (time, store.put_count) at the last status update
        self.source_fps = 0.0
        self.skipped = 0                # frames the display never showed (it had no time for them)

        self.source_spec = getattr(source, "target", None) or source.name
        self.model_dir = worker.model_dir if worker else ""
        self.profile_path = (worker.settings.profile or "") if worker else ""
        self._menus()
        self.panel.style_changed.connect(self._on_style)
        self.panel.ai_toggled.connect(lambda on: self.ai and self.ai.set_enabled(on))
        self._poll = QTimer(self)
        self._poll.setTimerType(Qt.TimerType.PreciseTimer)
        self._poll.timeout.connect(self._on_poll)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._update_status)
        self._shortcuts()

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, key, slot in (("Open &video...", "Ctrl+O", self.choose_video),
                                ("Open &model...", "Ctrl+M", self.choose_model),
                                ("Open endoscope &profile...", "Ctrl+P", self.choose_profile),
                                ("&Snapshot", "S", self.take_snapshot), ("&Record", "R", self.toggle_recording)):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # keys handled by _shortcuts
            action.triggered.connect(slot)
            file_menu.addAction(action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        full = QAction("&Fullscreen (F11)", self)
        full.triggered.connect(self.toggle_fullscreen)
        view_menu.addAction(full)

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a surgery video", str(Path.home()),
                                              "Videos (*.mp4 *.mkv *.mov *.avi *.m4v *.ts);;All files (*)")
        if path:
            self.reopen_requested.emit(path, self.model_dir, self.profile_path)

    def choose_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open an exported model folder", str(Path.home()))
        if path:
            self.reopen_requested.emit(self.source_spec, path, self.profile_path)

    def choose_profile(self) -> None:
        """The tower's endoscope profile (endospine-calibrate): field of view, color, lens."""
        path, _ = QFileDialog.getOpenFileName(self, "Open an endoscope profile", str(Path.home()),
                                              "Endoscope profiles (*.yaml *.yml);;All files (*)")
        if path:
            self.reopen_requested.emit(self.source_spec, self.model_dir, path)

    def _shortcuts(self) -> None:
        keys = {Qt.Key.Key_F11: self.toggle_fullscreen, Qt.Key.Key_Escape: self.showNormal,
                Qt.Key.Key_Space: self.toggle_overlay, Qt.Key.Key_O: self.toggle_overlay,
                Qt.Key.Key_S: self.take_snapshot, Qt.Key.Key_R: self.toggle_recording}
        if self.replay is not None:
            keys[Qt.Key.Key_P] = self.replay.toggle_pause
            keys[Qt.Key.Key_Period] = self.replay.step
        for n, c in enumerate(self.classes.foreground[:9], start=1):
            keys[getattr(Qt.Key, f"Key_{n}")] = lambda cid=c.id: self.toggle_class(cid)
        for key, slot in keys.items():
            QShortcut(QKeySequence(key), self, activated=slot)
        QShortcut(QKeySequence.StandardKey.Quit, self, activated=self.close)
        QShortcut(QKeySequence("Ctrl+O"), self, activated=self.choose_video)
        QShortcut(QKeySequence("Ctrl+M"), self, activated=self.choose_model)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.ai is not None:
            self.ai.start()
        self.capture.start()
        self._last_new = time.monotonic()
        self._poll.start(4)
        self._status_timer.start(500)

    def _wait_for_mask(self, frame: Frame, stopping) -> None:
        """Review mode (capture thread): read the next frame only once this one is on screen,
        which the GUI does when its mask has arrived (or when there is no AI to wait for)."""
        with self._shown:
            while not stopping.is_set() and self._shown_id < frame.frame_id:
                self._shown.wait(0.1)

    def _remembered_style(self) -> OverlayStyle:
        style = OverlayStyle()
        if self.settings is None:
            return style
        try:
            visible = {int(v) for v in str(self.settings.value("overlay/visible", "1,2,3")).split(",") if v}
            return OverlayStyle(opacity=float(self.settings.value("overlay/opacity", style.opacity)),
                                mode=str(self.settings.value("overlay/mode", style.mode)),
                                visible=frozenset(visible))
        except (TypeError, ValueError):
            return style  # unreadable settings: defaults, never a failed start

    def _remember(self) -> None:
        if self.settings is None:
            return
        self.settings.setValue("overlay/opacity", self.style.opacity)
        self.settings.setValue("overlay/mode", self.style.mode)
        self.settings.setValue("overlay/visible", ",".join(str(c) for c in sorted(self.style.visible)))
        self.settings.setValue("window/geometry", self.saveGeometry())

    def restore_geometry(self) -> None:
        if self.settings is not None and self.settings.value("window/geometry") is not None:
            self.restoreGeometry(self.settings.value("window/geometry"))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._remember()
        self._poll.stop()
        self._status_timer.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.capture.stop()
        if self.ai is not None:
            self.ai.stop()
        super().closeEvent(event)

    # -- user actions ------------------------------------------------------------------------
    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def toggle_overlay(self) -> None:
        from dataclasses import replace

        self.panel.apply(replace(self.style, enabled=not self.style.enabled))

    def take_snapshot(self) -> None:
        if self.frame is None:
            return
        try:
            paths = snapshot(self.output_dir / "snapshots", self.frame, self._drawn_result(), self.classes, self.style)
            self.statusBar().showMessage(f"snapshot: {paths[-1]}", 4000)
        except Exception as exc:  # noqa: BLE001 - a full disk must not end the session
            self.statusBar().showMessage(f"snapshot failed: {exc}", 6000)

    def toggle_recording(self) -> None:
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.stop()
            self.statusBar().showMessage(f"recording stopped: {rec.written} frames in {rec.folder}", 6000)
            return
        if self.frame is None:
            return
        try:
            self.recorder = Recorder(self.output_dir / "recordings", self.frame.size, self.capture.source.fps, self.classes)
            self.statusBar().showMessage(f"recording to {self.recorder.folder}", 4000)
        except Exception as exc:  # noqa: BLE001
            self.statusBar().showMessage(f"cannot record: {exc}", 6000)

    def toggle_class(self, class_id: int) -> None:
        self.panel.apply(self.style.toggled(class_id))

    def _on_style(self, style: OverlayStyle) -> None:
        self.style = style
        self._refresh_overlay()

    # -- per tick ----------------------------------------------------------------------------
    def _on_poll(self) -> None:
        now = time.monotonic()
        # _shown_last, not self.frame: after NO SIGNAL / END the last frame must not come back as live
        frame = self.store.get_newer(self._shown_last if self._held is None else self._held.frame_id)
        if self.review:  # a frame goes on screen only once its own mask is there
            if frame is not None:
                self._last_new = now  # the source is alive, the frame just waits for its mask
            self._held = frame or self._held
            frame = None
            if self._held is not None and self.ai.answered(self._held.frame_id):
                frame, self._held = self._held, None
        if frame is not None and self.capture.source.blank(frame.image):  # the card delivers, but black
            self._shown_last, self._last_new, self.frame = frame.frame_id, now, None
            if self.view.message != "NO SOURCE IMAGE":
                self.view.set_message("NO SOURCE IMAGE", f"{self.capture.source.name} delivers black frames: "
                                      "check the camera head, the light source and the card's input")
            return
        if frame is not None:
            if self._shown_last >= 0:
                self.skipped += max(0, frame.frame_id - self._shown_last - 1)  # captured, never shown
            self._shown_last = frame.frame_id
            self.frame = frame
            self._last_new = now
            self.view.set_frame(frame.image, frame.frame_id, frame.capture_time)
            self.display_rate.tick(now)
            self._refresh_overlay()
            if self.review:
                with self._shown:
                    self._shown_id = frame.frame_id
                    self._shown.notify_all()
            if self.recorder is not None:
                self.recorder.offer(frame, self._drawn_result(), self.style)
            return
        if self.ai is not None and self.frame is not None and self.ai.latest() is not self._seen_result:
            self._refresh_overlay()  # a result arrived for the frame on screen (once per result)
        status = self.capture.status
        if status.state in (CaptureState.ENDED, CaptureState.FAULTED):
            title = "END OF VIDEO" if status.state is CaptureState.ENDED else "NO SIGNAL"
            if (self.view.message, self.view.detail) != (title, status.message):
                self.frame = None
                self.view.set_message(title, status.message)
        elif self._held is None and self._frame_overdue(now):
            detail = self.capture.source.signal_note() or "waiting for frames from " + self.capture.source.name
            if (self.view.message, self.view.detail) != ("NO SIGNAL", detail):
                self.frame = None
                self.view.set_message("NO SIGNAL", detail)

    def _frame_overdue(self, now: float) -> bool:
        """Frame age says the picture is not live (never while a replay is paused)."""
        source = self.capture.source
        if source.idle():
            self._last_new = now
            return False
        return now - self._last_new > max(NO_SIGNAL_AFTER_S, 2.5 / (source.fps * getattr(source, "speed", 1.0)))

    def _drawn_result(self) -> Result | None:
        return self._drawn[0] if self._drawn else None

    def _refresh_overlay(self) -> None:
        """Paint the newest mask if it belongs to the frame on screen (staleness rule), else hide it."""
        if self.frame is None:
            return
        result = self.ai.latest() if self.ai is not None else None
        self._seen_result = result
        if self.review and result is not None and result.frame_id != self.frame.frame_id:
            result = None  # review mode: only the frame's own mask, never a neighbour's
        allowed, age = overlay_allowed(self.frame.frame_id, self.frame.capture_time, result)
        self.overlay_age_ms = age if allowed else None
        if allowed:
            if self._drawn != (result, self.style):
                self.view.set_overlay(render_overlay(result.mask, self.classes, self.style), result.box,
                                      result.frame_id, result.capture_time)
                self._drawn = (result, self.style)
            self.view.set_badge("" if self.style.enabled else "OVERLAY OFF")
            return
        if self._drawn is not None:
            self.view.set_overlay(None)
            self._drawn = None
        self.view.set_badge(self._hidden_reason(result, age))

    def _hidden_reason(self, result: Result | None, age: float | None) -> str:
        if self.ai is None:
            return ""
        state = self.ai.state
        if state is AIState.OFF:
            return "AI OFF"
        if state in (AIState.LOADING, AIState.RESTARTING, AIState.UNAVAILABLE, AIState.REJECTED):
            return f"AI {state.value.upper()}"
        if result is None:
            return "AI: no mask yet"
        return f"AI overlay hidden: mask {age:.0f} ms old" if age is not None else "AI overlay hidden"

    def _update_status(self) -> None:
        now, count = time.monotonic(), self.store.put_count
        t0, n0 = self._captured
        self.source_fps = (count - n0) / (now - t0) if now > t0 else 0.0
        self._captured = (now, count)
        parts = [self.capture.source.name, f"source {self.source_fps:.1f} fps",
                 f"display {self.display_rate.rate():.1f} fps", f"skipped {self.skipped}",
                 f"capture {self.capture.status.state.value}"]
        if self.ai is None:
            parts.append("AI: no model")
        else:
            ai = self.ai
            parts += [f"AI {ai.state.value} {ai.rate.rate():.1f} fps", f"latency {ai.latency_ms:.0f} ms",
                      f"model {ai.model_ms:.0f} ms",
                      "overlay age " + (f"{self.overlay_age_ms:.0f} ms" if self.overlay_age_ms is not None else "-")]
            self.panel.ai_label.setText(f"{ai.state.value}: {ai.message}")
        if self.recorder is not None:
            parts.append(f"REC {self.recorder.written} frames" + (f" ({self.recorder.dropped} dropped)"
                                                                  if self.recorder.dropped else ""))
            if self.recorder.error:
                parts.append(f"recording failed: {self.recorder.error}")
        if self.replay is not None:
            self.replay.refresh()
        self.status_label.setText("  |  ".join(parts))


def _classes_of(worker: WorkerConfig | None) -> ClassTable:
    """Class names and colors for the legend: from the model's manifest (the worker verifies it)."""
    if worker is None or not Path(worker.model_dir).is_dir():
        return default_classes()
    try:
        return load_manifest(worker.model_dir, verify=False).classes
    except EndoSpineError:
        return default_classes()
