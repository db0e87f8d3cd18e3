from __future__ import annotations

import time

import numpy as np
import pytest

from app.sources import FileSource, SyntheticSource, open_source
from models.errors import EndoSpineError
from tests.conftest import moving_pattern


def _read_all(src, limit=1000):
    frames = []
    with src:
        while len(frames) < limit and (f := src.read()) is not None:
            frames.append(f)
    return frames


def test_file_source_reads_every_frame_in_order(small_video):
    frames = _read_all(FileSource(small_video, realtime=False))
    assert len(frames) == 30
    assert [f.frame_id for f in frames] == list(range(30))
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[1] == pytest.approx(1 / 15, abs=1e-3)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8


def test_file_source_is_paced_by_pts(pattern_video):
    path = pattern_video(frames=10, fps=25.0)
    t0 = time.monotonic()
    frames = _read_all(FileSource(path))
    elapsed = time.monotonic() - t0
    assert len(frames) == 10
    assert elapsed >= 9 / 25 * 0.9  # never faster than the source's own clock


def test_file_source_loops(pattern_video):
    frames = _read_all(FileSource(pattern_video(frames=5), loop=True, realtime=False), limit=12)
    assert len(frames) == 12 and [f.frame_id for f in frames] == list(range(12))


@pytest.mark.parametrize("kw", [
    dict(width=63, height=47, pix_fmt="yuv444p"),            # odd size
    dict(width=64, height=48, pix_fmt="yuv420p10le"),        # 10-bit
    dict(width=64, height=48, pix_fmt="gray", codec="ffv1", suffix=".mkv"),  # grayscale
])
def test_file_source_normalizes_to_rgb8(pattern_video, kw):
    w, h = kw["width"], kw["height"]
    frames = _read_all(FileSource(pattern_video(frames=4, **kw), realtime=False))
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
        FileSource(path).open()
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
    with pytest.raises(EndoSpineError, match="synthetic:SEED"):
        open_source("synthetic:abc")
