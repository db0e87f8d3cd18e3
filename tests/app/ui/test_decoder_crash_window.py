"""A decoder killed by SIGSEGV mid-playback: the window stays up and says which file and when."""
from __future__ import annotations

import os
import signal

import pytest

from models.core.sources.isolated import IsolatedVideoSource

pytestmark = pytest.mark.gui


def test_display_survives_a_decoder_segfault(qtbot, small_video):
    from app.ui.main_window import MainWindow

    src = IsolatedVideoSource(small_video, loop=True)
    src.open()
    win = MainWindow(src)
    qtbot.addWidget(win)
    win.show()
    win.start()
    ticks = []
    win._poll.timeout.connect(lambda: ticks.append(1))
    try:
        assert win.replay is not None  # the replay bar drives the child through the same controls
        qtbot.waitUntil(lambda: win.pipeline.screen.shown_last >= 5, timeout=20000)
        os.kill(src.decoder_pid, signal.SIGSEGV)
        qtbot.waitUntil(lambda: "SIGSEGV" in win.view.detail, timeout=10000)
        assert win.view.detail.startswith("small.mp4: the video decoder stopped (SIGSEGV) at 00:0")
        assert win.frame is None and not win.view.overlay_visible
        n = len(ticks)
        qtbot.wait(200)
        assert len(ticks) > n and win.isVisible()  # the display process is alive and polling
    finally:
        win.close()
