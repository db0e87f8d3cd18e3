"""The live path without a window (app.compose): wiring, timing, ticks, and the review gate."""
from __future__ import annotations

import threading
import time

import pytest

from app.ai.supervisor import WorkerConfig
from app.capture_thread import CaptureThread, LatestFrame, ReviewGate
from app.compose import build_live, open_source_stage, timing_of
from models.core.errors import EndoSpineError
from models.core.imageio import write_image
from models.core.optics.profile import default_profile, save_profile
from models.core.timing import DEFAULT_TIMING, Timing
from tests.app.fakes import ListSource, gray_frames


def _ticks(live, until, timeout_s: float = 5.0):
    """Tick like the window's poll timer until `until(decision)` holds; the decisions seen."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(live.tick(time.monotonic()))
        if until(seen[-1]):
            break
        time.sleep(0.004)
    return seen


def test_video_only_pipeline_shows_frames_then_end_of_video():
    live = build_live(ListSource(gray_frames(10), fps=100, realtime=True))
    assert live.ai is None and live.gate is None and live.timing is DEFAULT_TIMING
    live.start()
    try:
        seen = _ticks(live, lambda d: d.message is not None)
    finally:
        live.stop()
    shown = [d.frame.frame_id for d in seen if d.frame is not None]
    assert shown == sorted(shown) and shown[-1] == 9
    assert seen[-1].message == ("END OF VIDEO", "end of source") and live.screen.frame is None
    assert sum(d.skipped for d in seen) == 9 - (len(shown) - 1)  # every frame shown or counted


@pytest.mark.unit
def test_one_timing_for_source_and_worker():
    worker = WorkerConfig(model_dir="mode=ok", timing=Timing(ai_backoff_s=(0.1,)))
    source = ListSource(gray_frames(1))
    assert build_live(source, worker).timing == worker.timing  # none given: the worker's
    profile = Timing(no_signal_after_s=0.6)
    live = build_live(source, worker, profile)
    assert live.timing is profile and live.ai.cfg.timing is profile and source.timing is profile
    assert not live.review and build_live(source, None, review=True).gate is None  # review needs an AI
    assert build_live(source, worker, review=True).gate is not None


@pytest.mark.unit
def test_review_gate_holds_capture_until_released():
    gate = ReviewGate()
    stopping = threading.Event()
    done = []
    waiter = threading.Thread(target=lambda: (gate.wait(3, stopping), done.append(1)))
    waiter.start()
    time.sleep(0.15)
    assert not done
    gate.release(3)
    waiter.join(2)
    assert done
    stopping.set()
    gate.wait(4, stopping)  # a stopping capture never waits


def test_capture_thread_waits_on_the_gate():
    gate, store = ReviewGate(), LatestFrame()
    cap = CaptureThread(ListSource(gray_frames(5)), store, gate)
    cap.start()
    time.sleep(0.2)
    assert store.put_count == 1  # frame 0 stored, not yet shown: the next read waits
    gate.release(0)
    deadline = time.monotonic() + 2
    while store.put_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.put_count == 2
    cap.stop()


@pytest.mark.unit
def test_stage_choices_an_offline_path_reuses(tmp_path):
    with pytest.raises(EndoSpineError, match="no images"):  # opened here: a bad SOURCE is one line
        open_source_stage(str(tmp_path), realtime=False)
    write_image(tmp_path / "f.png", gray_frames(1)[0])
    source = open_source_stage(str(tmp_path), realtime=False, timing=Timing(card_hang_min_s=1.0))
    assert source.opened and not source.realtime and source.timing.card_hang_min_s == 1.0
    assert source.read().frame_id == 0
    source.close()
    path = save_profile(default_profile().updated(timing=Timing(stale_limit_s=0.1)), tmp_path / "p.yaml")
    assert timing_of(path).stale_limit_s == 0.1 and timing_of(None) is DEFAULT_TIMING
