"""Damaged files in the real window: the good part plays, then one line says what happened."""
from __future__ import annotations

import pytest

from models.core.sources.video import VideoSource
from tests.models.core.sources.test_file_faults import _cut, _remux

pytestmark = pytest.mark.gui


def _window(qtbot, path):
    from app.ui.main_window import MainWindow

    win = MainWindow(VideoSource(path))
    qtbot.addWidget(win)
    win.show()
    win.start()
    return win


def test_cut_recording_plays_then_says_where_it_ended(qtbot, pattern_video, tmp_path):
    cut = _cut(pattern_video(width=64, height=48, frames=30, fps=25.0), tmp_path / "cut.mp4", 0.55)
    win = _window(qtbot, cut)
    try:
        qtbot.waitUntil(lambda: win.view.message == "END OF VIDEO", timeout=10000)
        assert win.pipeline.screen.shown_last > 3 and "cut.mp4: file ends early at 00:0" in win.view.detail
    finally:
        win.close()


def test_unfinalized_recording_is_named_and_the_window_stays(qtbot, pattern_video, tmp_path):
    whole = _remux(pattern_video(width=64, height=48, frames=30, fps=25.0), tmp_path / "m.mp4", "mp4")
    win = _window(qtbot, _cut(whole, tmp_path / "unfinished.mp4", 0.6))
    try:
        qtbot.waitUntil(lambda: "index (moov) is missing" in win.view.detail, timeout=10000)
        assert "unfinished.mp4" in win.view.detail and win.isVisible()
    finally:
        win.close()
