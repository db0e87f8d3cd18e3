from __future__ import annotations

import time

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.sources.folder import FolderSource
from models.core.sources.registry import open_source
from models.core.sources.synthetic import SyntheticSource
from models.core.sources.video import VideoSource
from tests.conftest import moving_pattern


def _read_all(src, limit=1000):
    frames = []
    with src:
        while len(frames) < limit and (f := src.read()) is not None:
            frames.append(f)
    return frames


def test_file_source_reads_every_frame_in_order(small_video):
    frames = _read_all(VideoSource(small_video, realtime=False))
    assert len(frames) == 30
    assert [f.frame_id for f in frames] == list(range(30))
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[1] == pytest.approx(1 / 15, abs=1e-3)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8


def test_file_source_is_paced_by_pts(pattern_video):
    path = pattern_video(frames=10, fps=25.0)
    t0 = time.monotonic()
    frames = _read_all(VideoSource(path))
    elapsed = time.monotonic() - t0
    assert len(frames) == 10
    assert elapsed >= 9 / 25 * 0.9  # never faster than the source's own clock


def test_file_source_loops(pattern_video):
    frames = _read_all(VideoSource(pattern_video(frames=5), loop=True, realtime=False), limit=12)
    assert len(frames) == 12 and [f.frame_id for f in frames] == list(range(12))


@pytest.mark.parametrize("kw", [
    dict(width=63, height=47, pix_fmt="yuv444p"),            # odd size
    dict(width=64, height=48, pix_fmt="yuv420p10le"),        # 10-bit
    dict(width=64, height=48, pix_fmt="gray", codec="ffv1", suffix=".mkv"),  # grayscale
])
def test_file_source_normalizes_to_rgb8(pattern_video, kw):
    w, h = kw["width"], kw["height"]
    frames = _read_all(VideoSource(pattern_video(frames=4, **kw), realtime=False))
    assert len(frames) == 4
    img = frames[1].image
    assert img.shape == (h, w, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
    ref = moving_pattern(1, w, h).astype(int)
    if kw["pix_fmt"] == "gray":
        assert np.abs(img.astype(int).mean(axis=2) - ref.mean(axis=2)).mean() < 60
    else:
        assert np.abs(img.astype(int) - ref).mean() < 8


@pytest.mark.parametrize("content, problem", [(None, "not found"), (b"", "empty"), (b"\x00garbage" * 100, "not a readable video")])
def test_bad_files_give_one_line(tmp_path, content, problem):
    path = tmp_path / "case.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EndoSpineError) as exc:
        VideoSource(path).open()
    assert str(path) in str(exc.value) and problem in str(exc.value)


def test_synthetic_source():
    src = open_source("synthetic:3")
    assert isinstance(src, SyntheticSource) and src.seed == 3
    src.size = (96, 64)
    src.fps = 200.0
    frames = _read_all(src, limit=3)
    assert [f.image.shape for f in frames] == [(64, 96, 3)] * 3


@pytest.mark.unit
def test_bad_synthetic_spec():
    with pytest.raises(EndoSpineError, match=r"synthetic\[:SEED\]"):
        open_source("synthetic:abc")


def test_seek_is_frame_accurate(pattern_video):
    path = pattern_video(width=64, height=48, frames=60, fps=25.0)
    with VideoSource(path, realtime=False) as src:
        reference = [src.read() for _ in range(60)]
    with VideoSource(path, realtime=False) as src:
        src.read()
        for target in (1.0, 0.2, 2.0, 0.0):
            src.seek(target)
            frame = src.read()
            k = round(target * 25)
            assert frame.pts == pytest.approx(k / 25, abs=1e-3)
            assert np.array_equal(frame.image, reference[k].image)


def test_pause_step_and_speed(pattern_video):
    path = pattern_video(width=64, height=48, frames=60, fps=25.0)
    src = VideoSource(path)
    src.open()
    try:
        src.read()
        src.pause(True)
        src.step(2)
        a, b = src.read(), src.read()
        assert (a.pts, b.pts) == pytest.approx((0.04, 0.08), abs=1e-3)
        src.set_speed(4.0)
        src.pause(False)
        t0 = time.monotonic()
        for _ in range(20):
            src.read()
        elapsed = time.monotonic() - t0
        assert elapsed < 20 / 25 * 0.6  # four times faster than the source's own pace (0.8 s)
        assert src.speed == 4.0
        src.set_speed(100)
        src.read()
        assert src.speed == 4.0  # clamped to 0.25x..4x
    finally:
        src.close()


def test_corrupt_packets_are_skipped_and_counted(pattern_video, tmp_path):
    data = bytearray(pattern_video(width=64, height=48, frames=40, fps=25.0).read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 3, len(data) - 100, 40):
        data[pos] ^= 0xFF
    bad = tmp_path / "flipped.mp4"
    bad.write_bytes(bytes(data))
    with VideoSource(bad, realtime=False) as src:
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
    pts = [f.pts for f in frames]
    assert pts == sorted(pts)  # never out of order
    assert len(frames) > 5


def test_folder_source(tmp_path):
    from models.core.imageio import write_image

    for i in range(3):
        write_image(tmp_path / f"{i:03d}.png", np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "002b.png").write_bytes(b"junk")  # unreadable: skipped and counted
    src = open_source(f"{tmp_path}?fps=100")
    assert isinstance(src, FolderSource) and src.fps == 100
    frames = _read_all(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 50, 100] and src.unreadable == 1
    with pytest.raises(EndoSpineError, match="fps"):
        open_source(f"{tmp_path}?fps=0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EndoSpineError, match="no images"):
        open_source(str(empty)).open()


@pytest.mark.unit
def test_stream_urls_are_streams():
    src = open_source("rtsp://127.0.0.1:8554/scope")
    assert isinstance(src, VideoSource) and src.is_stream and not src.realtime and not src.loop
