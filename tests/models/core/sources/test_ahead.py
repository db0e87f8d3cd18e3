"""Decoding ahead (models/core/sources/ahead.py): items in order, at most `depth` made ahead,
the producer's exception raised in the consumer, close() stops the producer, the consumer's stop
ends a wait; a file source decodes ahead and still loops and seeks exactly."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from models.core.sources.ahead import DecodeAhead
from models.core.sources.video import VideoSource

pytestmark = pytest.mark.unit


def _counted(n, made):
    for i in range(n):
        made.append(i)
        yield i


def test_items_come_in_order_then_the_end():
    made = []
    ahead = DecodeAhead(_counted(50, made), depth=3)
    assert list(ahead) == list(range(50))
    with pytest.raises(StopIteration):
        next(ahead)
    assert ahead.close()


def test_the_producer_runs_ahead_by_depth_and_no_further():
    made, taken = [], threading.Event()

    def items():
        for i in range(100):
            made.append(i)
            yield i
        taken.set()

    ahead = DecodeAhead(items(), depth=4)
    assert next(ahead) == 0
    for _ in range(200):  # the producer fills the queue, then blocks on it
        if len(made) >= 6:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.1)
    assert len(made) == 6   # 1 taken + 4 queued + 1 made and waiting for room
    assert not taken.is_set()
    assert ahead.close()


def test_the_producers_exception_is_raised_in_the_consumer_after_its_items():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    ahead = DecodeAhead(items(), depth=2)
    assert next(ahead) == 1 and next(ahead) == 2
    with pytest.raises(OSError, match="disk gone"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_close_stops_a_producer_blocked_on_a_full_queue():
    def endless():
        i = 0
        while True:
            i += 1
            yield i

    ahead = DecodeAhead(endless(), depth=2)
    assert next(ahead) == 1
    assert ahead.close(timeout=2.0)
    with pytest.raises(StopIteration):
        next(ahead)


def test_a_waiting_consumer_calls_waiting_and_ends_on_its_stop():
    stop, release, calls = threading.Event(), threading.Event(), []

    def slow():
        release.wait(5.0)
        yield 1

    def waiting():
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    ahead = DecodeAhead(slow(), depth=2, stop=stop, waiting=waiting, poll_s=0.01)
    with pytest.raises(StopIteration):
        next(ahead)
    assert len(calls) == 3
    release.set()
    assert ahead.close()


def test_depth_must_be_positive():
    with pytest.raises(ValueError):
        DecodeAhead(iter(()), depth=0)


@pytest.mark.slow
def test_a_file_decoded_ahead_loops_and_seeks_to_the_exact_frame(pattern_video):
    src = VideoSource(pattern_video(frames=30), loop=True, realtime=False)
    src.open()
    try:
        n = 0
        first = src.read()
        pts = [first.pts]
        while len(pts) < 200:
            f = src.read()
            pts.append(f.pts)
            n += 1
            if f.pts < pts[-2]:
                break  # looped: the file's clock starts again
        assert pts[-1] == pytest.approx(first.pts) and n > 2
        src.seek(pts[len(pts) // 2])
        f = src.read()
        assert f.pts == pytest.approx(pts[len(pts) // 2])
    finally:
        src.close()


@pytest.mark.slow
def test_a_seek_past_the_last_frame_of_a_looping_file_shows_it_then_starts_again(pattern_video):
    """The decoding thread loops while the seek looks for a frame at the file's end: the seek shows
    the last frame, and the next frame is the first with its own time (not one invented after the
    last frame's)."""
    src = VideoSource(pattern_video(frames=30), loop=True, realtime=False)
    src.open()
    try:
        first = src.read()
        src.seek(src.duration)
        last = src.read()
        after = src.read()
        assert last.pts > first.pts + 1.0 and after.pts == pytest.approx(first.pts)
    finally:
        src.close()


def test_loop_switched_on_after_the_decoding_thread_passed_the_end_still_loops(pattern_video):
    """The decoding thread reached the file's end while looping was off, then looping was switched
    on before those last frames were shown (the isolated decoder's test of the controls hit this
    under load): the frames after the last one are the file's start again, not the end."""
    import time

    src = VideoSource(pattern_video(width=64, height=48, frames=20, fps=25.0), realtime=False)
    src.open()
    try:
        first = src.read()
        src.pause()
        src.seek(0.64)                         # 3 frames left: they and the end fit in the queue
        assert src.read().pts == pytest.approx(0.64)
        time.sleep(0.3)                        # the decoding thread has reached the end meanwhile
        src.pause(False)
        src.loop = True
        pts = [src.read().pts for _ in range(5)]
        assert pts[:3] == pytest.approx([0.68, 0.72, 0.76]) and pts[3] == pytest.approx(first.pts)
    finally:
        src.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_producer_runs_below_the_consumers_priority_and_only_it():
    """nice=N: the producer thread's nice value is its process's plus N; the consumer's thread
    (and so the process's other threads) keep theirs. A file source decodes ahead that way."""
    def own_nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def items():
        yield own_nice()

    mine = own_nice()
    ahead = DecodeAhead(items(), depth=2, nice=2)
    assert list(ahead) == [min(mine + 2, 19)] and ahead.niced
    assert own_nice() == mine and ahead.close()
    plain = DecodeAhead(items(), depth=2)
    assert list(plain) == [mine] and not plain.niced and plain.close()


def test_a_file_is_decoded_on_a_lower_priority_thread(pattern_video):
    import models.core.sources.video as video

    with VideoSource(pattern_video(frames=10), realtime=False) as src:
        assert src.read() is not None
        assert src._frames.niced == (sys.platform.startswith("linux") and video.AHEAD_NICE > 0)
