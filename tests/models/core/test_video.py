from __future__ import annotations

import errno
import os

import av
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.video import VideoWriter, parse_resolution


@pytest.mark.parametrize("suffix", [".mp4", ".m4v", ".mov", ".mkv", ".ts", ".avi"])
def test_writes_all_frames(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    with VideoWriter(path, 32, 24, fps=30, preset="ultrafast") as w:
        for i in range(12):
            w.write(np.full((24, 32, 3), i * 20, np.uint8))
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 12 and frames[0].width == 32
    assert not list(tmp_path.glob(".*partial*"))


def test_failure_leaves_no_file(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(ValueError):
        with VideoWriter(path, 32, 24, preset="ultrafast") as w:
            w.write(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_odd_size_needs_444():
    with pytest.raises(EndoSpineError, match="even"):
        VideoWriter("/tmp/never.mp4", 33, 24)


@pytest.mark.unit
@pytest.mark.parametrize("text, ok", [("1920x1080", (1920, 1080)), ("64X48", (64, 48)), ("abc", None), ("10x10", None)])
def test_parse_resolution(text, ok):
    if ok:
        assert parse_resolution(text) == ok
    else:
        with pytest.raises(EndoSpineError, match="--resolution"):
            parse_resolution(text)


# -- a failing disk: one line, no partial file (issue 19, defect 9) ---------------------------------
class _FailingDisk:
    """The writer's container, failing as a full disk does: on the n-th packet, or when closing
    (where an MP4 writes its index)."""

    def __init__(self, real, fail_at: int | None, number: int = errno.ENOSPC):
        self.real, self.fail_at, self.number, self.packets = real, fail_at, number, 0

    def mux(self, packet):
        if self.fail_at is not None and self.packets >= self.fail_at:
            raise OSError(self.number, os.strerror(self.number))
        self.packets += 1
        self.real.mux(packet)

    def close(self):
        self.real.close()
        if self.fail_at is None:
            raise OSError(self.number, os.strerror(self.number))


@pytest.mark.parametrize("fail_at, number, words", [(0, errno.ENOSPC, "disk full"), (5, errno.ENOSPC, "disk full"),
                                                    (None, errno.EIO, "input/output error")])
def test_a_failing_disk_is_one_line_and_leaves_nothing(tmp_path, fail_at, number, words):
    path = tmp_path / "v.mp4"
    with pytest.raises(EndoSpineError) as exc:
        with VideoWriter(path, 32, 24, fps=30, preset="ultrafast") as w:
            w._container = _FailingDisk(w._container, fail_at, number)
            for i in range(30):
                w.write(np.full((24, 32, 3), i * 8, np.uint8))
    assert str(exc.value).startswith(f"{path}: cannot ") and f"video ({words}" in str(exc.value)
    assert isinstance(exc.value, OSError) and exc.value.errno == number  # a recorder still tells a full disk
    assert list(tmp_path.iterdir()) == []


def test_unsupported_names_are_refused_before_writing(tmp_path):
    for name in ("x.png", "noext"):
        with pytest.raises(EndoSpineError, match="not a video file name"):
            VideoWriter(tmp_path / name, 32, 24)
    with pytest.raises(EndoSpineError, match="is a folder"):
        VideoWriter(tmp_path, 32, 24)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_every_video_name_has_a_container():
    from models.core.outputs import VIDEO
    from models.core.video import FORMATS

    assert set(FORMATS) == set(VIDEO.suffixes)
