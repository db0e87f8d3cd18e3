"""Hostile and damaged video files, each made from a small fixture video: one clear line or the
good part played in order, never a crash or a frame out of order."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.sources.file_checks import clock, mp4_layout
from models.core.sources.video import VideoSource


def _remux(src: Path, dst: Path, fmt: str, options: dict | None = None, zero_times: bool = False) -> Path:
    """The same H.264 packets in another layout (stream copy, no re-encoding); zero_times: every
    packet's timestamps set to 0, as a broken muxer writes them."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options or {}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                if zero_times:
                    packet.pts = packet.dts = 0
                packet.stream = copy
                out.mux(packet)
    return dst


def _cut(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * keep)])
    return dst


def _read_all(path: Path) -> tuple[VideoSource, list]:
    src = VideoSource(path, realtime=False)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    return src, frames


def _in_order(frames) -> bool:
    return (all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
            and [f.frame_id for f in frames] == list(range(len(frames))))


@pytest.fixture
def video(pattern_video):
    return pattern_video(width=64, height=48, frames=60, fps=25.0)


def test_non_video_with_a_video_name(tmp_path):
    path = tmp_path / "case.mov"
    path.write_text(json.dumps({"patient": "none", "frames": list(range(200))}))
    with pytest.raises(EndoSpineError, match=r"case\.mov: not a readable video$"):
        VideoSource(path).open()


def test_cut_recording_with_index_at_the_end_is_refused_in_one_line(video, tmp_path):
    whole = _remux(video, tmp_path / "moov_end.mp4", "mp4")
    assert mp4_layout(whole).boxes[-1] == "moov"  # the layout this case is about
    cut = _cut(whole, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(EndoSpineError) as exc:
        VideoSource(cut).open()
    msg = str(exc.value)
    assert msg.startswith(str(cut)) and "index (moov) is missing" in msg and "\n" not in msg


@pytest.mark.parametrize("layout", ["faststart", "fragmented"])
def test_cut_recording_with_index_first_plays_the_good_part(video, tmp_path, layout):
    whole = video if layout == "faststart" else _remux(
        video, tmp_path / "frag.mp4", "mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    if layout == "faststart":
        assert mp4_layout(whole).boxes.index("moov") < mp4_layout(whole).boxes.index("mdat")
    _, all_frames = _read_all(whole)
    cut = _cut(whole, tmp_path / f"cut_{layout}.mp4", 0.55)
    assert mp4_layout(cut).truncated
    src, frames = _read_all(cut)
    assert 5 < len(frames) < len(all_frames) and _in_order(frames)
    for got, ref in zip(frames, all_frames):  # the good part is the file's own frames, in place
        assert got.pts == pytest.approx(ref.pts) and np.abs(got.image.astype(int) - ref.image).mean() < 1
    note = src.end_note()
    assert f"file ends early at {clock(frames[-1].pts)}" in note and "\n" not in note
    whole_src, _ = _read_all(whole)
    assert whole_src.end_note() == ""  # a complete file ends normally


def test_flipped_bytes_are_skipped_and_counted_never_out_of_order(video, tmp_path):
    data = bytearray(video.read_bytes())
    start = data.find(b"mdat") + 200
    rng = np.random.default_rng(1)
    for pos in rng.integers(start, len(data) - 50, 60):
        data[pos] ^= 0x5A
    bad = tmp_path / "flipped.mp4"
    bad.write_bytes(bytes(data))
    src, frames = _read_all(bad)
    assert len(frames) > 10 and _in_order(frames)
    assert src.corrupt_packets > 0


def test_missing_timestamps_are_paced_by_the_frame_rate(video, tmp_path):
    raw = _remux(video, tmp_path / "raw.h264", "h264")  # an elementary stream carries no timestamps
    src, frames = _read_all(raw)
    assert len(frames) == 60 and _in_order(frames)
    assert [f.pts for f in frames] == pytest.approx([i / src.fps for i in range(60)])
    assert src.timestamp_repairs == 60


def test_zero_timestamps_are_paced_by_the_frame_rate(video, tmp_path):
    zero = _remux(video, tmp_path / "zero.mkv", "matroska", zero_times=True)  # every packet stamped 0
    src, frames = _read_all(zero)
    assert len(frames) == 60 and _in_order(frames)
    assert frames[-1].pts == pytest.approx(59 / src.fps) and src.timestamp_repairs == 59


def test_huge_resolution_is_refused_before_decoding(tmp_path):
    from models.core.video import VideoWriter

    path = tmp_path / "huge.mp4"
    with VideoWriter(path, 8192, 4368, 25, crf=45, preset="ultrafast") as w:
        w.write(np.zeros((4368, 8192, 3), np.uint8))
    with pytest.raises(EndoSpineError, match=r"huge\.mp4: 8192x4368 is larger than this display decodes"):
        VideoSource(path).open()


@pytest.mark.unit
def test_mp4_layout_of_non_iso_files(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"\x00\x00\x00\x10notaboxreally!!!")
    (tmp_path / "b.mkv").write_bytes(b"\x1aE\xdf\xa3")
    assert mp4_layout(tmp_path / "a.mp4") is None and mp4_layout(tmp_path / "b.mkv") is None
    assert clock(72.44) == "01:12.4"
