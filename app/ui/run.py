"""Starting the Qt application around a source: the live pipeline (app.compose) in a MainWindow."""
from __future__ import annotations

import sys
from pathlib import Path

from PyQt6.QtCore import QSettings, QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox

from app.ai.supervisor import WorkerConfig, worker_config
from app.compose import build_live, deid_of, open_source_stage, timing_of
from app.ui.main_window import MainWindow
from models.core.child import single_threaded_opencv, steady_memory
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.sources.base import Source
from models.core.timing import Timing


def run_window(source: Source, worker: WorkerConfig | None = None, output_dir: Path | None = None,
               fullscreen: bool = False, screen: int | None = None, screenshot: Path | None = None,
               quit_after: float | None = None, review: bool = False, timing: Timing | None = None,
               deid: DeidPolicy | None = None) -> int:
    """Show the main window on `source` (with the AI of `worker`) until closed or `quit_after` s.

    screen: which monitor (0-based, as Qt lists them) the window opens on, e.g. the OR monitor.
    timing: the timing rules, e.g. an endoscope profile's timing section (None: the worker's, else the defaults).
    deid: what recordings and snapshots keep (None: as the worker's profile says; models/core/deid.py).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    single_threaded_opencv()  # the display process (models/core/child.py says why for both)
    steady_memory()
    app.setApplicationName("EndoSpine")
    app.setOrganizationName("EndoSpine")
    window = MainWindow(build_live(source, worker, timing, review, deid), output_dir=output_dir, settings=QSettings())
    window.restore_geometry()
    _follow_reopen(window, output_dir, review)
    place_on_screen(window, screen)
    window.showFullScreen() if fullscreen else window.show()
    window.start()
    if quit_after is not None:
        def finish() -> None:
            if screenshot is not None:
                save_screenshot(window, screenshot)
            window.close()
        QTimer.singleShot(int(quit_after * 1000), finish)
    return app.exec()


def place_on_screen(window, screen: int | None) -> None:
    """Open `window` on monitor `screen` (0-based, as Qt lists them), e.g. the OR monitor; a
    screen that does not exist is a warning and the primary screen."""
    if screen is None:
        return
    screens = QApplication.instance().screens()
    if not 0 <= screen < len(screens):
        print(f"endospine: warning: no screen {screen} (have {len(screens)}); using the primary", file=sys.stderr)
        return
    window.setScreen(screens[screen])
    window.move(screens[screen].availableGeometry().topLeft())


def _follow_reopen(window: MainWindow, output_dir: Path | None, review: bool) -> None:
    """File > Open video / model / profile: a new window on the new choice replaces this one; a
    bad choice is one line in a message box and the current window stays."""

    def reopen(spec: str, model: str, profile: str) -> None:
        try:
            # a chosen profile must be valid (at start, a bad one only warns); none: the timing so far
            timing = timing_of(profile) if profile else window.pipeline.timing
            deid = deid_of(profile) if profile else window.pipeline.deid  # what recordings keep
            worker = worker_config(model or None, profile=profile or None)
            source = open_source_stage(spec, loop=True, isolated=True, timing=timing,
                                       view_max=window.pipeline.source.view_max)  # as the command line said
        except EndoSpineError as exc:
            QMessageBox.warning(window, "EndoSpine", str(exc))
            return
        new = MainWindow(build_live(source, worker, timing, review, deid), output_dir=output_dir,
                         settings=window.settings)
        new.setGeometry(window.geometry())
        _follow_reopen(new, output_dir, review)
        new.showFullScreen() if window.isFullScreen() else new.show()
        new.start()
        window.close()
        QApplication.instance().setProperty("endospine_window", new)  # keep it referenced

    window.reopen_requested.connect(reopen)


def save_screenshot(window: MainWindow, path: Path) -> None:
    """The window as the screen shows it (title bar included under a real X server)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    screen = window.screen()
    geo = window.frameGeometry()
    pixmap = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height()) if screen else None
    if pixmap is None or pixmap.isNull():  # offscreen platform: no screen to grab, render the widget
        pixmap = window.grab()
    if not pixmap.save(str(path)):
        print(f"endospine: error: {path}: cannot write screenshot", file=sys.stderr)
