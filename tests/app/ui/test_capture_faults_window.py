"""Capture faults seen in the real window: NO SIGNAL from frame age, NO SOURCE IMAGE, recovery."""
from __future__ import annotations

import av
import pytest

from app.ai.supervisor import WorkerConfig
from app.diagnostics.fake_card import FakeCard, Frames, Hang, Unplug
from models.core.sources.capture_card import CaptureSettings, CaptureSource
from models.core.timing import Timing

pytestmark = pytest.mark.gui
FAKE = "tests.app.fake_runtimes:FakeRuntime"


def _window(qtbot, card, worker=None, **kw):
    from app.ui.main_window import MainWindow

    win = MainWindow(CaptureSource(CaptureSettings(0), card), worker, **kw)
    qtbot.addWidget(win)
    win.show()
    win.start()
    return win


def _close(win, card):
    card.shutdown()
    win.close()


def test_unplug_shows_no_signal_hides_overlay_and_resumes(qtbot):
    card = FakeCard([Frames(100_000)])
    win = _window(qtbot, card, WorkerConfig(model_dir="mode=ok", runtime=FAKE, timing=Timing(ai_backoff_s=(0.1,))))
    try:
        qtbot.waitUntil(lambda: win.view.overlay_visible, timeout=30000)
        card.play_next(Unplug(2.0))
        last_live = win.pipeline.screen.shown_last
        qtbot.waitUntil(lambda: win.view.message == "NO SIGNAL", timeout=5000)
        assert card.log.unplugged  # it went dark because of the unplug, not before it
        qtbot.waitUntil(lambda: "reconnecting every 1 s" in win.view.detail, timeout=3000)
        while not card.log.replugged:  # all through the outage: no picture, no overlay
            assert win.frame is None and win.view._qimage is None and not win.view.overlay_visible
            qtbot.wait(20)
        qtbot.waitUntil(lambda: win.view.message == "" and win.pipeline.screen.shown_last > last_live, timeout=5000)
        assert win.capture.source.losses == 1 and win.capture.source.reconnects == 1
        assert win.capture.is_alive()  # the same capture thread: no restart
    finally:
        _close(win, card)


def test_hung_driver_read_gives_no_signal_and_the_gui_keeps_polling(qtbot):
    card = FakeCard([Frames(20), Hang(2.0)])  # no AI to wait for: the first frames show at once
    win = _window(qtbot, card)
    ticks = []
    win._poll.timeout.connect(lambda: ticks.append(1))
    try:
        qtbot.waitUntil(lambda: win.pipeline.screen.shown_last >= 19, timeout=5000)
        qtbot.waitUntil(lambda: "has not answered" in win.view.detail, timeout=5000)
        assert win.view.message == "NO SIGNAL" and win.capture.source._read_since is not None
        n = len(ticks)
        qtbot.wait(300)  # read() is still blocked in the 'driver' and the GUI keeps ticking
        assert win.capture.source._read_since is not None and len(ticks) > n + 10
        qtbot.waitUntil(lambda: win.view.message == "" and win.pipeline.screen.shown_last > 20, timeout=5000)
        assert win.capture.source.hangs == 1
    finally:
        _close(win, card)


def test_stale_buffers_give_no_signal(qtbot):
    card = FakeCard([Frames(15), Frames(60, kind="stale"), Frames(10_000)])
    win = _window(qtbot, card)
    try:
        qtbot.waitUntil(lambda: "repeats the same picture" in win.view.detail, timeout=5000)
        assert win.view.message == "NO SIGNAL" and win.pipeline.screen.shown_last == 14
        qtbot.waitUntil(lambda: win.view.message == "", timeout=5000)
    finally:
        _close(win, card)


def test_black_frames_say_no_source_image(qtbot):
    card = FakeCard([Frames(10), Frames(30, kind="black"), Frames(10_000)])
    win = _window(qtbot, card)
    try:
        qtbot.waitUntil(lambda: win.view.message == "NO SOURCE IMAGE", timeout=5000)
        assert "black frames" in win.view.detail and win.frame is None
        qtbot.waitUntil(lambda: win.view.message == "" and win.frame is not None, timeout=5000)
    finally:
        _close(win, card)


def test_resolution_change_mid_stream_with_ai_and_recording(qtbot, tmp_path):
    card = FakeCard([Frames(30, (128, 96)), Frames(30, (200, 150), fps=25), Frames(10_000, (96, 64))])
    win = _window(qtbot, card, WorkerConfig(model_dir="mode=ok", runtime=FAKE, timing=Timing(ai_backoff_s=(0.1,))), output_dir=tmp_path)
    try:
        qtbot.waitUntil(lambda: win.frame is not None, timeout=5000)
        win.toggle_recording()
        assert win.recorder is not None
        qtbot.waitUntil(lambda: win.frame is not None and win.frame.size == (96, 64), timeout=10000)
        qtbot.waitUntil(lambda: win.view.overlay_visible and win._drawn[0].frame_id > 60, timeout=30000)
        assert win.capture.source.format_changes == 2 and win.ai.state.value != "unavailable"
        rec = win.recorder
        win.toggle_recording()
        assert rec.written > 0 and rec.dropped > 0 and not rec.error  # other sizes skipped
        raw = next(rec.folder.glob("*_raw.mp4"))
        with av.open(str(raw)) as container:  # the recording stays playable at its starting size
            frames = [f for f in container.decode(video=0)]
        assert len(frames) == rec.written and (frames[0].width, frames[0].height) == (128, 96)
    finally:
        _close(win, card)
