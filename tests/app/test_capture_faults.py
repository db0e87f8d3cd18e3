"""Capture faults through the real CaptureSource with scripted fake cards (app.diagnostics.fake_card)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.capture_thread import CaptureState
from app.diagnostics.fake_card import FakeCard, Frames, Hang, Unplug, live_image
from models.core.sources.capture_card import CaptureSettings, CaptureSource, is_black
from tests.app.fakes import start_capture


def _source(card: FakeCard, reconnect_every: float = 1.0) -> CaptureSource:
    src = CaptureSource(CaptureSettings(0), card, reconnect_every=reconnect_every)
    src.open()
    return src


def _seq(frame) -> int:
    """The card's sequence number of a live frame (blue channel in BGR is the third channel in RGB)."""
    return int(frame.image[0, 0, 2])


def test_unplug_then_replug_resumes_with_reconnects_spaced():
    card = FakeCard([Frames(5, fps=200), Unplug(2.2), Frames(5, fps=200)], after="unplugged")
    src = _source(card)
    frames = [src.read() for _ in range(10)]
    assert [f.frame_id for f in frames] == list(range(10))
    assert [_seq(f) for f in frames] == list(range(1, 11))  # nothing lost, nothing repeated
    assert src.losses == 1 and src.reconnects == 1
    # reopened every second while unplugged (immediately, then 1 s apart), never faster
    attempts = card.log.open_attempts[1:]
    assert len(attempts) == 4
    assert all(b - a >= 0.99 for a, b in zip(attempts, attempts[1:]))
    assert card.log.opens[-1] >= card.log.replugged[0]
    # the gap is visible in capture times: the frame after the replug is not passed off as continuous
    assert frames[5].capture_time - frames[4].capture_time >= 2.2


def test_signal_note_while_unplugged_and_stop_ends_read():
    card = FakeCard([Frames(2, fps=200)], after="unplugged")
    src = _source(card, reconnect_every=0.2)
    thread, store = start_capture(src, lambda src, _: src.reconnect_attempts >= 2, timeout_s=5)
    assert "no device" in src.signal_note() and "reconnecting every 0.2 s" in src.signal_note()
    assert store.put_count == 2 and thread.status.state is CaptureState.RUNNING  # waiting, not ended
    thread.stop()
    assert not thread.is_alive() and thread.status.state is CaptureState.STOPPED


def test_hung_read_is_reported_and_its_late_frame_dropped():
    card = FakeCard([Frames(3, fps=200), Hang(1.0), Frames(3, fps=200)])
    src = _source(card)
    got, notes = [], []

    def reader():
        for _ in range(6):
            got.append(src.read())

    t = threading.Thread(target=reader)
    t.start()
    deadline = time.monotonic() + 5
    while not notes and time.monotonic() < deadline:  # the watchdog side: polled, never waits
        note = src.signal_note()
        if note:
            notes.append(note)
        time.sleep(0.01)
    t.join(5)
    assert "has not answered" in notes[0]
    assert src.hangs == 1
    seqs = [_seq(f) for f in got]
    assert seqs == sorted(seqs) and 4 not in seqs  # frame 4 came back after the hang: dropped
    assert src.signal_note() == ""


def test_stale_buffer_is_not_a_new_frame():
    card = FakeCard([Frames(3, fps=200), Frames(20, fps=200, kind="stale"), Frames(2, fps=200)])
    src = _source(card)
    frames = [src.read() for _ in range(5)]
    assert [_seq(f) for f in frames] == [1, 2, 3, 4, 5]
    assert src.stale_frames == 20 and [f.frame_id for f in frames] == [0, 1, 2, 3, 4]


def test_same_picture_with_advancing_device_clock_is_a_static_scene_not_stale():
    class StillCard(FakeCard):
        def _produce(self, mode, counted):  # identical pixels, but each frame newly time-stamped
            super()._produce(mode, counted)
            return np.ascontiguousarray(live_image(1, mode.size))

    src = _source(StillCard([Frames(6, fps=200)]))
    assert len([src.read() for _ in range(6)]) == 6 and src.stale_frames == 0


def test_resolution_and_fps_change_mid_stream():
    card = FakeCard([Frames(3, (64, 48), fps=200), Frames(3, (97, 31), fps=100), Frames(2, (64, 48), fps=200)])
    src = _source(card)
    shapes = [src.read().image.shape for _ in range(8)]
    assert shapes == [(48, 64, 3)] * 3 + [(31, 97, 3)] * 3 + [(48, 64, 3)] * 2
    assert src.format_changes == 2 and src.size == (64, 48)


@pytest.mark.parametrize("clock", ["repeat", "backwards"])
def test_bad_device_timestamps_keep_frames_in_order(clock):
    card = FakeCard([Frames(4, fps=200), Frames(6, fps=200, clock=clock), Frames(3, fps=200)])
    src = _source(card)
    frames = [src.read() for _ in range(13)]
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert [f.frame_id for f in frames] == list(range(13))
    assert [_seq(f) for f in frames] == list(range(1, 14))
    assert src.timestamp_repairs >= 6


def test_black_frames_are_delivered_and_recognized():
    card = FakeCard([Frames(2, fps=200), Frames(5, fps=200, kind="black"), Frames(2, fps=200)])
    src = _source(card)
    frames = [src.read() for _ in range(9)]
    black = [src.blank(f.image) for f in frames]
    assert black == [False] * 2 + [True] * 5 + [False] * 2
    assert src.stale_frames == 0  # identical black frames are not "stale": the card is live
    assert not is_black(np.full((1080, 1920, 3), 40, np.uint8)) and is_black(np.full((1080, 1920, 3), 16, np.uint8))


def test_play_next_pulls_the_cable_now():
    card = FakeCard([Frames(1_000, fps=200)], after="unplugged")
    src = _source(card, reconnect_every=0.1)
    assert [_seq(src.read()) for _ in range(3)] == [1, 2, 3]
    card.play_next(Unplug(0.3), Frames(2, fps=200))
    assert _seq(src.read()) == 4 and src.losses == 1 and card.log.unplugged
    assert _seq(src.read()) == 5
