"""The main window: the live pipeline's picture and overlay in a video view, side panel, menus.

The live path is built in app/compose.py and decided in app/decide.py; the window only paints.
The GUI thread polls: every tick asks the pipeline what the screen shows now (the newest frame,
the newest result, NO SIGNAL ...). Nothing queues up as Qt events, and neither capture nor the
AI ever waits for the GUI (review mode excepted: capture waits until its frame is up).
"""
from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QMainWindow, QStatusBar, QVBoxLayout, QWidget

from app.ai.supervisor import InferenceClient, WorkerConfig
from app.capture_thread import CaptureThread, LatestFrame
from app.compose import LivePipeline, build_live, gate_of
from app.decide import Decision, Overlay
from app.recorder import Recorder, snapshot
from app.stats import RateMeter
from app.ui.about import about_text, info_box, shortcuts_text
from app.ui.controls import NO_GATE, ControlPanel
from app.ui.replay import ReplayBar
from app.ui.video_view import VideoView
from models.core.costs import STAGES
from models.core.overlay import OverlayStyle, render_overlay
from models.core.sources.base import Source
from models.core.sources.replay import ReplaySource
from models.core.timing import Timing
from models.core.types import Frame, Result


class MainWindow(QMainWindow):
    # the user chose another video or model: (source spec, model folder or "" for none)
    reopen_requested = pyqtSignal(str, str, str)  # source, model folder, endoscope profile ('' = none)

    def __init__(self, source: Source | LivePipeline, worker: WorkerConfig | None = None,
                 output_dir: Path | None = None, settings=None, review: bool = False, timing: Timing | None = None):
        """source: a live pipeline (app.compose.build_live), or a source to build one on with the
        AI of `worker` (None: none), `timing` (None: the worker's, else the defaults) and `review`
        (frame-exact replay, each frame waits for its own mask: slower than real time if the model is).
        settings: a QSettings to remember the display choices in (None: remember nothing)."""
        super().__init__()
        self.pipeline = source if isinstance(source, LivePipeline) else build_live(source, worker, timing, review)
        source, worker = self.pipeline.source, self.pipeline.worker
        self.settings = settings
        self.output_dir = Path(output_dir) if output_dir else Path.home() / "EndoSpine"
        self.recorder: Recorder | None = None
        self.setWindowTitle(f"EndoSpine - {source.name}")
        self.classes = self.pipeline.classes
        self.style = self._remembered_style()
        self.view = VideoView(self)
        self.view.before_lagged_paint = self._on_poll  # after a GUI stall, paint the newest frame, not the old one
        self.view.lagged_paint_s = self.pipeline.timing.lagged_paint_s
        self.gated = gate_of(worker)  # None: no model (or no readable manifest: the AI says why)
        self.panel = ControlPanel(self.classes, self.style, self, gated=self.gated)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        row = QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(self.view, 1)
        row.addWidget(self.panel)
        column.addLayout(row, 1)
        replayable = isinstance(source, ReplaySource) and not source.is_stream
        self.replay = ReplayBar(source, central) if replayable else None
        if self.replay is not None:
            column.addWidget(self.replay)
        self.setCentralWidget(central)
        self.status_label = QLabel("starting", self)
        status = QStatusBar(self)
        status.addPermanentWidget(self.status_label, 1)
        self.setStatusBar(status)
        self.resize(1440, 860)

        if self.ai is None:
            self.panel.ai_box.setChecked(False)
            self.panel.ai_box.setEnabled(False)
        self._drawn: tuple[Result, OverlayStyle] | None = None  # what the view's overlay shows
        self._withheld: Result | None = None  # the result the gate kept off the screen (AI UNSURE)
        self.overlay_age_ms: float | None = None
        self.display_rate = RateMeter()
        self._captured = (time.monotonic(), 0)  # (time, store.put_count) at the last status update
        self.source_fps = 0.0
        self.skipped = 0                # frames the display never showed (it had no time for them)
        self._snapshot_wanted = False   # S pressed over a reduced frame: the next full-resolution one is saved

        self.source_spec = getattr(source, "target", None) or source.name
        self.model_dir = worker.model_dir if worker else ""
        self.profile_path = (worker.settings.profile or "") if worker else ""
        self.info = None  # the Help box last shown
        self._menus()
        self.panel.style_changed.connect(self._on_style)
        self.panel.ai_toggled.connect(lambda on: self.ai and self.ai.set_enabled(on))
        self._poll = QTimer(self)
        self._poll.setTimerType(Qt.TimerType.PreciseTimer)
        self._poll.timeout.connect(self._on_poll)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._update_status)

    def _menus(self) -> None:
        """Every key of the window is one QAction on the window, shown in a menu when it has an
        entry there. One owner per key: a key claimed twice in one window (say by an action and a
        QShortcut) is ambiguous, and Qt then fires neither."""
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Open &video...", self.choose_video, "Ctrl+O")
        self._action(file_menu, "Open &model...", self.choose_model, "Ctrl+M")
        self._action(file_menu, "Open endoscope &profile...", self.choose_profile, "Ctrl+P")
        file_menu.addSeparator()
        self._action(file_menu, "&Snapshot", self.take_snapshot, "S")
        self._action(file_menu, "&Record", self.toggle_recording, "R")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q").setMenuRole(QAction.MenuRole.QuitRole)
        view_menu = bar.addMenu("&View")
        self._action(view_menu, "&Fullscreen", self.toggle_fullscreen, "F11")
        self._action(view_menu, "&Overlay on/off", self.toggle_overlay, "Space", "O")
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "&About EndoSpine", self.show_about).setMenuRole(QAction.MenuRole.AboutRole)
        # keys without a menu entry
        self._action(None, "Leave fullscreen", self.showNormal, "Esc")
        if self.replay is not None:
            self._action(None, "Play/pause (files)", self.replay.toggle_pause, "P")
            self._action(None, "Step one frame (files)", self.replay.step, ".")
        for n, c in enumerate(self.classes.foreground[:9], start=1):
            # triggered(checked) would fill a lambda's first default argument: take it and drop it
            self._action(None, f"Show/hide {c.name}", lambda _checked=False, cid=c.id: self.toggle_class(cid), str(n))

    def _action(self, menu: QWidget | None, text: str, slot, *keys: str) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])  # the default context: anywhere in this window
        action.triggered.connect(slot)
        self.addAction(action)  # the window's own: its keys work with the menu bar hidden or native too
        if menu is not None:
            menu.addAction(action)
        return action

    def show_about(self) -> None:
        """Help > About EndoSpine: version, not a medical device, the model and its notice, licences."""
        self._show_info("About EndoSpine", about_text(self.model_dir))

    def show_shortcuts(self) -> None:
        """Help > Keyboard shortcuts: every key of the window, from its actions."""
        self._show_info("Keyboard shortcuts", shortcuts_text(self.actions()))

    def _show_info(self, title: str, text: str) -> None:
        """self.info: the box last shown (non-modal: the video and the window's keys go on)."""
        self.info = info_box(self, title, text)
        self.info.show()

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

    # -- the pipeline's parts ------------------------------------------------------------------
    @property
    def store(self) -> LatestFrame:
        return self.pipeline.store

    @property
    def capture(self) -> CaptureThread:
        return self.pipeline.capture

    @property
    def ai(self) -> InferenceClient | None:
        return self.pipeline.ai

    @property
    def frame(self) -> Frame | None:
        """The frame on screen (None while a message replaces the picture)."""
        return self.pipeline.screen.frame

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._keep_full()  # a larger source's full planes only while recording or for a snapshot
        self.pipeline.start()
        self._poll.start(4)
        self._status_timer.start(500)

    def _remembered_style(self) -> OverlayStyle:
        """Opacity and mode as last used; the classes shown as last used only with the same class
        table (ids mean other classes in another table: a 4-class model's "1,2,3" would hide a
        7-class table's nerve), else the table's defaults. Protected classes always start shown."""
        style = OverlayStyle.for_classes(self.classes)  # the class table decides what shows at first
        if self.settings is None:
            return style
        try:
            visible = style.visible
            if str(self.settings.value("overlay/classes", "")) == self._table_key():
                remembered = str(self.settings.value("overlay/visible", ""))
                visible = frozenset(int(v) for v in remembered.split(",") if v) | self.classes.protected
            return OverlayStyle(opacity=float(self.settings.value("overlay/opacity", style.opacity)),
                                mode=str(self.settings.value("overlay/mode", style.mode)),
                                visible=visible)
        except (TypeError, ValueError):
            return style  # unreadable settings: defaults, never a failed start

    def _table_key(self) -> str:
        """Which class table remembered visibility belongs to: its class names in id order."""
        return ",".join(self.classes.names)

    def _remember(self) -> None:
        if self.settings is None:
            return
        self.settings.setValue("overlay/opacity", self.style.opacity)
        self.settings.setValue("overlay/mode", self.style.mode)
        self.settings.setValue("overlay/visible", ",".join(str(c) for c in sorted(self.style.visible)))
        self.settings.setValue("overlay/classes", self._table_key())
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
        self.pipeline.stop()
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
        if self.frame.full is None and self.frame.size != self.capture.source.size:
            # a reduced view without its full planes: the next frame that has them is saved (the
            # source ships them from now on; within a few frames)
            self._snapshot_wanted = True
            self._keep_full()
            self.statusBar().showMessage("snapshot: taking the next full-resolution frame", 2000)
            return
        self._save_snapshot(self.frame)

    def _save_snapshot(self, frame: Frame) -> None:
        try:
            held = self.recorder.circle if self.recorder is not None else None  # the recording's field of view
            paths = snapshot(self.output_dir / "snapshots", frame, self._drawn_result(), self.classes, self.style,
                             policy=self._deid(), held=held)
            self.statusBar().showMessage(f"snapshot: {paths[-1]}", 4000)
        except Exception as exc:  # noqa: BLE001 - a full disk must not end the session
            self.statusBar().showMessage(f"snapshot failed: {exc}", 6000)

    def toggle_recording(self) -> None:
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            self._keep_full()
            rec.stop()
            self.statusBar().showMessage(f"recording stopped: {rec.written} frames in {rec.folder}", 6000)
            return
        if self.frame is None:
            return
        try:
            frame, source = self.frame, self.capture.source
            size = source.size if frame.full is None and frame.size != source.size else frame.full_size
            self.recorder = Recorder(self.output_dir / "recordings", size, source.fps, self.classes,
                                     policy=self._deid())
            self._keep_full()  # every pixel from the next frames on (until then: counted as dropped)
            self.statusBar().showMessage(f"recording to {self.recorder.folder}", 4000)
        except Exception as exc:  # noqa: BLE001
            self.statusBar().showMessage(f"cannot record: {exc}", 6000)

    def _keep_full(self) -> None:
        """A source larger than the view ships its full-resolution planes only while they are
        needed: recording, or a snapshot waiting for them."""
        self.capture.source.keep_full(self.recorder is not None or self._snapshot_wanted)

    def _deid(self):
        """What recordings and snapshots keep (models/core/deid.py), tagged with the loaded model's id."""
        return self.pipeline.deid.with_model(self.ai.model_id if self.ai is not None else "")

    def toggle_class(self, class_id: int) -> None:
        self.panel.apply(self.style.toggled(class_id))

    def _on_style(self, style: OverlayStyle) -> None:
        self.style = style
        overlay = self.pipeline.restyled(style.enabled)
        if overlay is not None:
            self._paint_overlay(overlay)

    # -- per tick: paint what the pipeline decided ---------------------------------------------
    def _on_poll(self) -> None:
        now = time.monotonic()
        with STAGES.measure("tick"):
            decision = self.pipeline.tick(now, self.style.enabled)
        self._paint(decision, now)

    def _paint(self, d: Decision, now: float) -> None:
        self.skipped += d.skipped
        if d.frame is not None:
            self.view.set_frame(d.frame.image, d.frame.frame_id, d.frame.capture_time)
            self.display_rate.tick(now)
        if d.overlay is not None:
            self._paint_overlay(d.overlay)
        if d.frame is not None and self._snapshot_wanted and (d.frame.full is not None
                                                              or d.frame.size == self.capture.source.size):
            self._snapshot_wanted = False
            self._keep_full()
            self._save_snapshot(d.frame)
        if d.frame is not None and self.recorder is not None:
            self.recorder.offer(d.frame, self._drawn_result(), self.style, withheld=self._withheld)
        if d.message is not None and (self.view.message, self.view.detail) != d.message:
            self.view.set_message(*d.message)  # the picture and its overlay go
            self._drawn = self._withheld = None

    def _paint_overlay(self, overlay: Overlay) -> None:
        self.overlay_age_ms = overlay.age_ms
        self._withheld = overlay.withheld
        result = overlay.result
        if result is not None:
            if self._drawn != (result, self.style):
                with STAGES.measure("overlay_render"):
                    rgba = render_overlay(result.mask, self.classes, self.style)
                self.view.set_overlay(rgba, result.box, result.frame_id, result.capture_time)
                self._drawn = (result, self.style)
        elif self._drawn is not None:
            self.view.set_overlay(None)
            self._drawn = None
        self.view.set_badge(overlay.badge)

    def _drawn_result(self) -> Result | None:
        return self._drawn[0] if self._drawn else None

    def _update_status(self) -> None:
        now, count = time.monotonic(), self.store.put_count
        t0, n0 = self._captured
        self.source_fps = (count - n0) / (now - t0) if now > t0 else 0.0
        self._captured = (now, count)
        parts = [self.capture.source.name]
        frame = self.frame
        if frame is not None and frame.full is not None:  # a 4K source on the 1080p view: say what is shown
            parts.append("{}x{} shown at {}x{}".format(*frame.full_size, *frame.size))
        parts += [f"source {self.source_fps:.1f} fps",
                 f"display {self.display_rate.rate():.1f} fps", f"skipped {self.skipped}",
                 f"capture {self.capture.status.state.value}"]
        if self.ai is None:
            parts.append("AI: no model")
        else:
            ai = self.ai
            parts += [f"AI {ai.state.value} {ai.rate.rate():.1f} fps", f"latency {ai.latency_ms:.0f} ms",
                      f"model {ai.model_ms:.0f} ms",
                      "overlay age " + (f"{self.overlay_age_ms:.0f} ms" if self.overlay_age_ms is not None else "-")]
            if self.gated is False:  # the overlay is not gated: a surgeon must know
                parts.append(NO_GATE)
            self.panel.ai_label.setText(f"{ai.state.value}: {ai.message}")
        if self.recorder is not None:
            parts.append(f"REC {self.recorder.written} frames" + (f" ({self.recorder.dropped} dropped)"
                                                                  if self.recorder.dropped else ""))
            if self.recorder.black_frames:  # de-identified: no field of view known, so nothing of the frame kept
                parts.append(f"{self.recorder.black_frames} frames recorded black (no field of view found)")
            if self.recorder.error:
                parts.append(f"recording failed: {self.recorder.error}")
        if self.replay is not None:
            self.replay.refresh()
        self.status_label.setText("  |  ".join(parts))

