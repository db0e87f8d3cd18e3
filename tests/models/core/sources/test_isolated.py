"""Video files decoded in a child process: same frames, controls and errors as in-process
decoding, and a decoder killed by SIGSEGV is one line of error while the caller lives on."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from app.capture_thread import CaptureState
from models.core.errors import EndoSpineError
from models.core.sources.isolated import IsolatedVideoSource
from models.core.sources.video import VideoSource
from models.core.timing import Timing
from tests.app.fakes import start_capture
from tests.models.core.sources.test_file_faults import _cut, _remux


def _all(src) -> list:
    frames = []
    with src:
        while (f := src.read()) is not None:
            frames.append(f)
    return frames


def test_same_frames_as_in_process(small_video):
    ref = _all(VideoSource(small_video, realtime=False))
    got = _all(IsolatedVideoSource(small_video, realtime=False))
    assert len(got) == len(ref) == 30
    assert [f.pts for f in got] == [f.pts for f in ref] and [f.frame_id for f in got] == list(range(30))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, ref))


def test_seek_pause_step_speed_loop(pattern_video):
    path = pattern_video(width=64, height=48, frames=20, fps=25.0)
    with IsolatedVideoSource(path, realtime=False) as src:
        assert src.duration == pytest.approx(0.8) and src.size == (64, 48) and src.fps == 25
        src.read()
        src.pause()
        src.seek(0.52)
        frame = src.read()
        assert frame.pts == pytest.approx(0.52) and src.paused and src.idle()
        src.step(1)
        assert src.read().pts == pytest.approx(0.56)
        src.set_speed(4.0)
        src.pause(False)
        src.loop = True
        pts = [src.read().pts for _ in range(20)]
        assert src.speed == 4.0 and min(pts) == pytest.approx(0.0)  # went round the loop


@pytest.mark.parametrize("case, problem", [("empty", "file is empty"), ("unfinished", "index (moov) is missing"),
                                           ("missing", "video file not found")])
def test_bad_files_give_the_same_one_line(pattern_video, tmp_path, case, problem):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "unfinished":
        _cut(_remux(pattern_video(), tmp_path / "m.mp4", "mp4"), path, 0.6)
    with pytest.raises(EndoSpineError) as exc:
        IsolatedVideoSource(path).open()
    assert str(exc.value).startswith(str(path)) and problem in str(exc.value)


def test_cut_file_end_note_comes_through(pattern_video, tmp_path):
    cut = _cut(pattern_video(width=64, height=48, frames=40, fps=25.0), tmp_path / "cut.mp4", 0.55)
    src = IsolatedVideoSource(cut, realtime=False)
    frames = _all(src)
    assert 5 < len(frames) < 40 and "file ends early at" in src.end_note()


def test_decoder_killed_by_sigsegv_mid_playback(small_video):
    src = IsolatedVideoSource(small_video, loop=True)  # real-time pacing: still playing when killed
    thread, store = start_capture(src, lambda _, store: store.put_count >= 5)
    os.kill(src.decoder_pid, signal.SIGSEGV)
    thread.join(10)
    status = thread.status
    assert status.state is CaptureState.FAULTED
    assert status.message.startswith("small.mp4: the video decoder stopped (SIGSEGV) at 00:0")
    assert "display is unaffected" in status.message and src._slots is None  # shared memory released
    assert store.put_count >= 5


def test_paced_by_the_file_timestamps(pattern_video):
    frames = _all(IsolatedVideoSource(pattern_video(frames=10, fps=25.0)))
    assert len(frames) == 10
    # delivered on the file's clock: never earlier than its pts after the first frame
    t0, p0 = frames[0].capture_time, frames[0].pts
    assert all(f.capture_time - t0 >= (f.pts - p0) * 0.95 for f in frames)
    assert frames[-1].capture_time - t0 >= 9 / 25 * 0.95


def test_decode_cost_measures_both_paths(capsys):
    from app.diagnostics.decode_cost import main, measure

    result = measure(frames=12, width=64, height=48, rounds=1)
    assert result["frames_timed"] == {"in_process": 7, "child_process": 7}
    assert all(v > 0 for v in result["read_ms_median"].values()) and result["copy_out_of_slot_ms_median"] >= 0
    assert main(["--size", "wide"]) == 1 and "WIDTHxHEIGHT" in capsys.readouterr().err


def test_decoder_that_stops_answering_is_killed_and_reported(small_video):
    src = IsolatedVideoSource(small_video, loop=True, timing=Timing(decoder_hang_s=1.0))
    thread, _ = start_capture(src, lambda _, store: store.put_count >= 3)
    pid = src.decoder_pid
    os.kill(pid, signal.SIGSTOP)  # alive but stuck, as FFmpeg in an endless loop on a crafted file
    thread.join(15)
    assert thread.status.state is CaptureState.FAULTED
    assert "the video decoder stopped answering (nothing for 1 s) at 00:0" in thread.status.message
    with pytest.raises(ProcessLookupError):  # killed, and reaped
        os.kill(pid, 0)


def test_a_long_pause_is_not_a_hang(pattern_video):
    with IsolatedVideoSource(pattern_video(frames=20, fps=25.0), timing=Timing(decoder_hang_s=0.3)) as src:
        src.read()
        src.pause()
        outcome = []

        def reader():
            try:
                outcome.append(src.read())  # waits through the pause, polling the child
            except EndoSpineError as exc:
                outcome.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        t.join(0.9)  # three times the hang limit, paused
        assert t.is_alive() and not outcome
        src.pause(False)
        t.join(5)
        assert outcome and not isinstance(outcome[0], EndoSpineError) and outcome[0].frame_id == 1


def test_size_change_mid_file_in_and_out_of_process(pattern_video, tmp_path):
    """Two raw H.264 streams back to back: 64x48 then 96x64 (larger than a slot: sent inline)."""
    small = _remux(pattern_video(width=64, height=48, frames=10), tmp_path / "a.h264", "h264")
    large = _remux(pattern_video(width=96, height=64, frames=10), tmp_path / "b.h264", "h264")
    both = tmp_path / "both.h264"
    both.write_bytes(small.read_bytes() + large.read_bytes() + small.read_bytes())
    expected = [(48, 64, 3)] * 10 + [(64, 96, 3)] * 10 + [(48, 64, 3)] * 10
    for cls in (VideoSource, IsolatedVideoSource):
        frames = _all(cls(both, realtime=False))
        assert [f.image.shape for f in frames] == expected
        assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))


# -- progress, not pictures: a still in the file is not a hung decoder (issue 19, defect 7) ---------
def _vfr_video(path, times: list[float], width: int = 64, height: int = 48):
    """A variable-frame-rate MP4 whose frames carry exactly these timestamps (seconds)."""
    from fractions import Fraction

    import av

    from tests.conftest import moving_pattern

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast"}
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(moving_pattern(i, width, height), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _read_in_thread(src):
    """Start src.read() in a thread; (thread, outcome list: the frame or the exception)."""
    outcome = []

    def reader():
        try:
            outcome.append(src.read())
        except EndoSpineError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread, outcome


STILL = [0.0, 0.04, 0.08, 8.08, 8.12, 8.16]  # an 8-second still after the third frame


@pytest.mark.parametrize("cls", [VideoSource, IsolatedVideoSource])
def test_an_8_second_still_plays_through(tmp_path, cls):
    """At 4x the still lasts 2 s, four times the decoder's hang limit: the child reports its wait
    on the file's clock, so it is not killed, and the source is idle meanwhile (no NO SIGNAL)."""
    import time

    path = _vfr_video(tmp_path / "still.mp4", STILL)
    kwargs = {"timing": Timing(decoder_hang_s=0.5, decoder_hang_intervals=0.1)} if cls is IsolatedVideoSource else {}
    with cls(path, **kwargs) as src:
        src.set_speed(4.0)
        assert [round(src.read().pts, 2) for _ in range(3)] == [0.0, 0.04, 0.08]
        start = time.monotonic()
        thread, outcome = _read_in_thread(src)
        idle = []
        while thread.is_alive() and time.monotonic() - start < 10:
            idle.append(src.idle())
            time.sleep(0.05)
        held = time.monotonic() - start
        assert outcome and not isinstance(outcome[0], EndoSpineError), outcome
        assert outcome[0].pts == pytest.approx(8.08) and held >= 1.5  # delivered on the file's clock
        assert sum(idle) >= len(idle) // 2 and not src.idle()  # idle while held, not once delivered
        assert [round(src.read().pts, 2) for _ in range(2)] == [8.12, 8.16] and src.read() is None


def test_a_decoder_stopped_during_a_still_is_still_killed(tmp_path):
    """The heartbeat is the decoding thread's own: stopped mid-still, it goes silent and is
    killed after the hang limit, long before the still would have ended."""
    import time

    path = _vfr_video(tmp_path / "still.mp4", STILL)
    src = IsolatedVideoSource(path, timing=Timing(decoder_hang_s=0.5, decoder_hang_intervals=0.1))
    with src:
        src.set_speed(2.0)  # the still lasts 4 s
        for _ in range(3):
            src.read()
        start = time.monotonic()
        thread, outcome = _read_in_thread(src)
        time.sleep(0.6)  # in the still, beating
        assert thread.is_alive()
        pid = src.decoder_pid
        os.kill(pid, signal.SIGSTOP)
        thread.join(10)
        assert outcome and isinstance(outcome[0], EndoSpineError), outcome
        assert "the video decoder stopped answering" in str(outcome[0])
        assert time.monotonic() - start < 3.5
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- a file whose demuxer cannot seek: loop and seek by reopening (issue 19, defect 8) --------------
@pytest.mark.parametrize("cls", [VideoSource, IsolatedVideoSource])
def test_raw_h264_loops_and_seeks(pattern_video, tmp_path, cls):
    """A raw H.264 elementary stream (no container, no timestamps) refuses to seek (EPERM)."""
    raw = _remux(pattern_video(width=64, height=48, frames=10, fps=25.0), tmp_path / "raw.h264", "h264")
    first = _all(VideoSource(raw, realtime=False))
    with cls(raw, loop=True, realtime=False) as src:
        frames = [src.read() for _ in range(25)]  # twice round, and on
        assert [round(f.pts * 25) for f in frames] == list(range(10)) * 2 + list(range(5))
        assert [f.frame_id for f in frames] == list(range(25))
        assert all(np.array_equal(f.image, first[i % 10].image) for i, f in enumerate(frames))
        src.pause()
        src.seek(0.2)
        frame = src.read()
        assert frame.pts == pytest.approx(0.2) and np.array_equal(frame.image, first[5].image)


@pytest.mark.unit
def test_progress_is_packets_or_the_file_clock_not_any_message():
    import time

    from models.core.sources.decoder_protocol import Progress

    src = IsolatedVideoSource("never-opened.mp4")
    src._heard = heard = time.monotonic() - 10
    src._progressed(Progress(40, 1.6, 0.0))  # more packets read: progress
    assert src._heard > heard and not src.idle()
    src._heard = heard
    src._progressed(Progress(40, 1.6, 0.0))  # the same count again: a child going nowhere
    assert src._heard == heard
    src._progressed(Progress(40, 1.6, 3.0))  # a frame waiting 3 s for its time: progress, and idle
    assert src._heard > heard and src.idle()


def test_larger_frames_come_as_a_view_with_their_full_planes_the_same_in_both_decoders(pattern_video):
    path = pattern_video(width=320, height=240, frames=12, fps=25.0)
    whole = _all(VideoSource(path, realtime=False))
    for cls in (VideoSource, IsolatedVideoSource):
        src = cls(path, realtime=False)
        src.view_max = (160, 160)
        got = _all(src)
        assert len(got) == len(whole) == 12
        for frame, ref in zip(got, whole):
            assert frame.image.shape == (120, 160, 3) and frame.full.fmt == "yuv420p"
            assert frame.full_size == ref.size == (320, 240)
            assert np.abs(frame.full_rgb().astype(int) - ref.image).mean() < 1.5  # every pixel kept
        if cls is VideoSource:
            first = got
        else:  # the child's frames are the in-process ones, picture and planes
            assert all(np.array_equal(a.image, b.image) and np.array_equal(a.full.data, b.full.data)
                       for a, b in zip(got, first))


def test_frames_that_fit_the_view_are_untouched(small_video):
    src = IsolatedVideoSource(small_video, realtime=False)
    src.view_max = (1920, 1080)
    got = _all(src)
    ref = _all(VideoSource(small_video, realtime=False))
    assert all(f.full is None and np.array_equal(f.image, r.image) for f, r in zip(got, ref))


@pytest.mark.parametrize("width, height, pix_fmt, kept", [(320, 240, "yuv444p", "yuv420p"),
                                                          (322, 242, "yuv422p", "yuv420p"),
                                                          (321, 241, "yuv444p", "rgb24")])
def test_other_layouts_and_odd_sides_keep_their_full_picture_too(pattern_video, width, height, pix_fmt, kept):
    path = pattern_video(width=width, height=height, frames=4, fps=25.0, pix_fmt=pix_fmt)
    whole = _all(VideoSource(path, realtime=False))
    src = IsolatedVideoSource(path, realtime=False)
    src.view_max = (160, 160)
    got = _all(src)
    assert len(got) == len(whole) == 4
    for frame, ref in zip(got, whole):
        assert frame.full.fmt == kept and frame.full_size == (width, height) and max(frame.size) <= 160
        assert np.abs(frame.full_rgb().astype(int) - ref.image).mean() < 2.5


def test_files_decode_on_one_thread_up_to_1080p60s_pixel_rate(small_video, monkeypatch):
    import models.core.sources.video as video

    with VideoSource(small_video, realtime=False) as src:
        assert src._stream.codec_context.thread_count == 1
    monkeypatch.setattr(video, "ONE_THREAD_PIXEL_RATE", 160 * 120 * 14)  # this 15 fps file is above it now
    with VideoSource(small_video, realtime=False) as src:
        assert src._stream.thread_type.name == "AUTO" and src._stream.codec_context.thread_count != 1
        assert src.read() is not None


def test_full_planes_only_while_asked_for(pattern_video):
    path = pattern_video(width=320, height=240, frames=40, fps=25.0)
    src = IsolatedVideoSource(path, realtime=False)
    src.view_max = (160, 160)
    with src:
        src.keep_full(False)
        frames = [src.read() for _ in range(12)]
        assert frames[-1].full is None and frames[-1].image.shape == (120, 160, 3)  # the view alone
        src.keep_full(True)
        frames = [src.read() for _ in range(12)]
        assert frames[-1].full is not None and frames[-1].full_size == (320, 240)
    pictures = []
    for keep in (False, True):  # in process too; the view is the same picture either way
        local = VideoSource(path, realtime=False)
        local.view_max = (160, 160)
        with local:
            local.keep_full(keep)
            frame = local.read()
            assert (frame.full is not None) == keep
            pictures.append(frame.image)
    assert np.array_equal(*pictures)


def test_frames_are_lent_from_the_slots_and_a_holder_of_every_slot_does_not_stall_the_video(small_video):
    from models.core.sources.isolated import SLOTS

    with IsolatedVideoSource(small_video, realtime=False) as src:
        dropped = [src.read() for _ in range(3)]          # taken and dropped one by one: all lent
        assert all(f.own() is not f and not f.image.flags.writeable for f in dropped)
        copy = dropped[-1].own()
        assert copy.image.flags.writeable and np.array_equal(copy.image, dropped[-1].image)
        del dropped
        held = []
        while (f := src.read()) is not None:              # keeps every frame: the slots run out
            held.append(f)
    lent = [f.own() is not f for f in held]
    assert len(held) == 27 and sum(lent) <= SLOTS and not all(lent)  # the rest came through the pipe
    ref = _all(VideoSource(small_video, realtime=False))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(held, ref[3:]))
