"""The supervised inference worker: results, staleness inputs, and every way it can fail."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest

from app.ai.supervisor import AIState, InferenceClient, WorkerConfig
from app.capture_thread import LatestFrame
from models.core.classes import default_classes
from models.core.timing import Timing
from models.core.types import Frame

FAKE = "tests.app.fake_runtimes:FakeRuntime"


@contextmanager
def _running(spec: str, **kw) -> Iterator[tuple[InferenceClient, LatestFrame]]:
    """A started client of the fake runtime `spec` and its frame store; stopped afterwards.
    hang, max_failures: the worker's hang timeout and failures before UNAVAILABLE (Timing)."""
    store = LatestFrame()
    timing = Timing(ai_hang_timeout_s=kw.pop("hang", 1.0), ai_backoff_s=(0.1, 0.2),
                    ai_max_failures=kw.pop("max_failures", Timing().ai_max_failures))
    cfg = WorkerConfig(model_dir=spec, runtime=FAKE, timing=timing, **kw)
    client = InferenceClient(cfg, store)
    client.start()
    try:
        yield client, store
    finally:
        client.stop()


def _feed(store: LatestFrame, seconds: float, fps: float = 50.0, start: int = 0, level: int = 130) -> int:
    n = start
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        store.put(Frame(n, time.monotonic(), n / fps, np.full((48, 64, 3), level, np.uint8)))
        n += 1
        time.sleep(1 / fps)
    return n


def _feed_until_unavailable(client: InferenceClient, store: LatestFrame, timeout: float = 30.0) -> None:
    """Keep frames coming until the supervisor gives up on the worker (or `timeout` passes)."""
    fed, end = 0, time.monotonic() + timeout
    while client.state is not AIState.UNAVAILABLE and time.monotonic() < end:
        fed = _feed(store, 0.2, start=fed)


def _wait(pred, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_results_belong_to_their_frames():
    with _running("mode=ok") as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        _feed(store, 1.0, level=130)  # brightness 130 -> class 2 everywhere
        assert _wait(lambda: client.latest() is not None)
        r = client.latest()
        assert r.model_id == "fake-ok" and r.mask.shape == (48, 64) and (r.mask == 2).all()
        assert r.box == (0, 0, 64, 48) and r.capture_time is not None
        assert client.rate.rate() > 5


@pytest.mark.parametrize("mode", ["crash", "segv", "hang"])  # os.abort, SIGSEGV, sleeps forever
def test_worker_failure_is_survived_and_restarted(mode, tmp_path):
    with _running(f"mode={mode},at=5,once={tmp_path / 'faulted'}", hang=0.5) as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        n = _feed(store, 0.5)
        assert _wait(lambda: client.restarts >= 1, 15), client.message
        assert ("hung" if mode == "hang" else "died") in client.last_failure
        assert _wait(lambda: client.state in (AIState.RUNNING, AIState.DELAYED), 20), client.message
        _feed(store, 0.5, start=n)  # fresh frames: fresh, timely masks again
        assert _wait(lambda: client.state is AIState.RUNNING and client.latest() is not None, 10), client.message
        assert client.latest().frame_id >= n


def test_repeated_crashes_turn_the_ai_off_until_reenabled():
    with _running("mode=crash,at=1", max_failures=3) as (client, store):
        _feed_until_unavailable(client, store)
        assert client.state is AIState.UNAVAILABLE, client.message
        assert "3 failures" in client.message
        client.set_enabled(True)
        assert _wait(lambda: client.state in (AIState.LOADING, AIState.RUNNING, AIState.RESTARTING))


def test_model_that_cannot_load_is_unavailable_with_its_reason():
    with _running("mode=failload") as (client, _):
        assert _wait(lambda: client.state is AIState.UNAVAILABLE)
        assert "SHA-256 mismatch" in client.message


@pytest.mark.parametrize("mode, why", [("nan", "non-finite"), ("inf", "non-finite"),
                                       ("shape", f"expected ({len(default_classes())}, h, w)"),  # the fake's table
                                       ("box", "not inside the 64x48 frame"), ("mask", "expected (48, 64) uint8")])
def test_bad_outputs_are_rejected_by_the_worker_which_keeps_serving(mode, why):
    """The fake really returns the bad output; only the worker's own checks can catch it."""
    with _running(f"mode={mode},at=3,count=2") as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        n = _feed(store, 0.4)
        assert _wait(lambda: client.errors >= 2)
        assert client.errors == 2 and why in client.last_rejection, client.last_rejection
        _feed(store, 0.4, start=n)
        assert _wait(lambda: client.latest() is not None and client.latest().frame_id >= n)
        assert (client.latest().mask == 2).all() and client.state is AIState.RUNNING
        assert client.restarts == 0


def test_rejected_output_clears_the_mask_and_shows_the_state():
    with _running("mode=nan,at=4", max_bad_outputs=1000) as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        _feed(store, 0.5)
        assert _wait(lambda: client.errors >= 3)
        assert client.latest() is None and client.state is AIState.REJECTED and "non-finite" in client.message


def test_a_model_that_only_returns_bad_output_is_restarted_then_turned_off():
    with _running("mode=shape,at=1", max_bad_outputs=3, max_failures=2) as (client, store):
        _feed_until_unavailable(client, store)
        assert client.state is AIState.UNAVAILABLE, client.message
        assert client.restarts == 1 and "3 outputs rejected in a row" in client.last_failure
        assert "2 failures" in client.message and client.latest() is None


def test_slow_ai_is_delayed_and_skips_frames_but_never_restarts():
    with _running("mode=ok,delay=0.3", hang=2.0) as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        ids = set()
        end = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < end:
            n = _feed(store, 0.1, start=n)
            if client.latest() is not None:
                ids.add(client.latest().frame_id)
        assert client.state is AIState.DELAYED and client.restarts == 0
        assert len(ids) >= 2 and n >= 3 * len(ids)  # answers for some frames only, the newest each time


def test_switch_off_and_on():
    with _running("mode=ok") as (client, store):
        assert _wait(lambda: client.state is AIState.RUNNING)
        client.set_enabled(False)
        assert client.state is AIState.OFF and client.latest() is None
        client.set_enabled(True)
        assert _wait(lambda: client.state is AIState.RUNNING)
        _feed(store, 0.3)
        assert _wait(lambda: client.latest() is not None)


def test_real_model_in_the_worker(tiny_model_dir):
    store = LatestFrame()
    client = InferenceClient(WorkerConfig(model_dir=str(tiny_model_dir)), store)
    client.start()
    try:
        assert _wait(lambda: client.state is AIState.RUNNING, 60), client.message
        _feed(store, 0.5)
        assert _wait(lambda: client.latest() is not None, 20)
        r = client.latest()
        assert r.mask.shape == (48, 48) and r.box == (8, 0, 48, 48)
        assert set(r.timings) == {"preprocess", "predict", "postprocess"}
    finally:
        client.stop()


def test_the_worker_runs_below_the_displays_priority():
    import os

    with _running("mode=ok") as (client, _):
        assert _wait(lambda: client.state is AIState.RUNNING)
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, client.worker_pid) == min(mine + WorkerConfig.nice, 19)
    with _running("mode=ok", nice=0) as (client, _):
        assert _wait(lambda: client.state is AIState.RUNNING)
        assert os.getpriority(os.PRIO_PROCESS, client.worker_pid) == os.getpriority(os.PRIO_PROCESS, 0)


def test_a_frame_lent_from_a_decoders_slot_is_read_in_place_by_the_worker():
    from models.core.child import FrameSlots

    slots = FrameSlots.create(48 * 64 * 3, 3)  # the decoder child's slots, as the display holds them
    back: list[int] = []
    try:
        with _running("mode=ok") as (client, store):
            assert _wait(lambda: client.state is AIState.RUNNING)
            for n, (slot, level) in enumerate([(1, 70), (2, 200), (1, 130)]):  # class = level // 64
                slots.write(slot, np.full((48, 64, 3), level, np.uint8))
                store.put(Frame(n, time.monotonic(), None, slots.lend(slot, back.append).array((48, 64, 3))))
                assert _wait(lambda: (r := client.latest()) is not None and r.frame_id == n)
                assert (client.latest().mask == level // 64).all()  # the worker read that slot, at its offset
            assert client._slots is None  # nothing was copied into the supervisor's own memory
    finally:
        slots.close()
    assert back[:2] == [1, 2]  # each slot went back once its frame was replaced
