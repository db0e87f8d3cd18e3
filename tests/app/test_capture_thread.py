from __future__ import annotations

import threading

import numpy as np
import pytest

from app.capture_thread import CaptureState, CaptureThread, LatestFrame
from models.core.types import Frame
from tests.app.fakes import ListSource, gray_frames


def _frame(i: int) -> Frame:
    return Frame(i, float(i), None, np.zeros((2, 2, 3), np.uint8))


@pytest.mark.unit
def test_latest_frame_keeps_newest_and_counts_skips():
    store = LatestFrame()
    assert store.get_newer(-1) is None
    store.put(_frame(0))
    store.put(_frame(1))  # frame 0 never taken
    assert store.get_newer(-1).frame_id == 1
    assert store.get_newer(1) is None  # nothing newer than what we have
    store.put(_frame(2))
    assert store.get_newer(1).frame_id == 2
    assert store.overwritten == 1 and store.put_count == 3


@pytest.mark.unit
def test_latest_frame_is_thread_safe():
    store = LatestFrame()

    def writer(start):
        for i in range(start, start + 2000):
            store.put(_frame(i))

    threads = [threading.Thread(target=writer, args=(k * 10000,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.put_count == 6000


def test_capture_thread_delivers_and_ends():
    src = ListSource(gray_frames(5))
    store = LatestFrame()
    cap = CaptureThread(src, store)
    cap.start()
    cap.join(5)
    assert cap.status.state is CaptureState.ENDED
    assert store.put_count == 5 and src.closed
    assert store.get_newer(-1).frame_id == 4


def test_capture_thread_faults_cleanly():
    cap = CaptureThread(ListSource([], fail_open="cam0: device busy"), LatestFrame())
    cap.start()
    cap.join(5)
    assert cap.status.state is CaptureState.FAULTED and "device busy" in cap.status.message

    src = ListSource(gray_frames(5), raise_at=2)
    cap = CaptureThread(src, LatestFrame())
    cap.start()
    cap.join(5)
    assert cap.status.state is CaptureState.FAULTED and "driver exploded" in cap.status.message
    assert src.closed


def test_capture_thread_stops_promptly_while_waiting():
    src = ListSource(gray_frames(100), fps=1.0, realtime=True)  # one frame a second
    cap = CaptureThread(src, LatestFrame())
    cap.start()
    cap.stop(timeout=2)
    assert not cap.is_alive() and cap.status.state is CaptureState.STOPPED
