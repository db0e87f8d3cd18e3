from __future__ import annotations

import av
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.video import VideoWriter, parse_resolution


def test_writes_all_frames(tmp_path):
    path = tmp_path / "v.mp4"
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
