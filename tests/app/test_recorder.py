"""Recording: every offered frame lands in the video and the CSV, each mask painted is kept once,
the overlay video made from them afterwards shows what the display painted, and a full disk ends
the recording cleanly with playable files."""
from __future__ import annotations

import csv
import errno
import time

import av
import numpy as np
import pytest

from app.recorder import Recorder, snapshot
from app.recording import overlay_video
from models.core.classes import default_classes
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label
from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.types import Frame, Result

W, H = 96, 64
PLENTY = 10 ** 12
FULL = DeidPolicy(keep_full_frame=True)  # these frames are uniform, no field of view: the tests below keep them


def _frame(i: int) -> Frame:
    image = np.full((H, W, 3), (i * 7) % 256, np.uint8)
    return Frame(frame_id=i, capture_time=i / 30, pts=i / 30, image=image)


def _result(i: int, score: float | None = None, unsure: bool = False) -> Result:
    mask = np.zeros((H, W), np.uint8)
    mask[10:30, 10:50] = 1
    return Result(frame_id=i, mask=mask, model_id="test", timings={}, box=(0, 0, W, H), capture_time=i / 30,
                  score=score, unsure=unsure)


def _decoded_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _record(tmp_path, n: int, **kwargs) -> Recorder:
    rec = Recorder(tmp_path, (W, H), 30.0, default_classes(), **{"policy": FULL, **kwargs})
    for i in range(n):
        while rec._queue.full():  # the test wants every frame; the display would drop instead
            time.sleep(0.001)
        rec.offer(_frame(i), _result(i) if i % 2 else None, OverlayStyle())
    rec.stop()
    return rec


def _files(tmp_path):
    videos = sorted(tmp_path.glob("*.mp4"))
    rows = list(csv.DictReader(line for line in next(tmp_path.glob("*_frames.csv")).open() if not line.startswith("#")))
    return videos, rows


def _overlay_frames(tmp_path) -> list[np.ndarray]:
    """The recording's overlay video, made as `endospine overlay-video` makes it, decoded."""
    done = overlay_video(next(tmp_path.glob("*_frames.csv")), tmp_path / "overlay.mp4")
    with av.open(done["path"]) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_every_frame_is_recorded_with_a_csv_row(tmp_path):
    rec = _record(tmp_path, 40, disk_free=lambda _: PLENTY)
    assert rec.error == "" and rec.written == 40 and rec.dropped == 0
    videos, rows = _files(tmp_path)
    assert [v.name for v in videos] == ["rec-0001_raw.mp4"]  # one encoder: the overlay is kept as data
    assert _decoded_frames(videos[0]) == 40
    assert [int(r["frame_id"]) for r in rows] == list(range(40))
    assert [r["overlay_shown"] for r in rows[:4]] == ["0", "1", "0", "1"]
    assert [(r["gate_score"], r["ai_unsure"]) for r in rows[:2]] == [("", "0"), ("", "0")]  # a model without a gate
    assert [(r["mask_file"], r["mask_box"]) for r in rows[:2]] == [("", ""), ("rec-0001_masks/m000001.png", f"0 0 {W} {H}")]
    assert rows[1]["overlay_style"] == "mode=fill opacity=0.45 contour=3 classes=1,2,3,4,5"
    assert rec.masks == 20 and len(list((tmp_path / "rec-0001_masks").glob("m*.png"))) == 20
    assert np.array_equal(read_label(tmp_path / "rec-0001_masks/m000001.png"), _result(1).mask)  # lossless
    assert len(_overlay_frames(tmp_path)) == 40


def test_a_mask_shown_over_several_frames_is_kept_once_and_painted_as_it_was_styled(tmp_path):
    """The display keeps painting one result until the next arrives; the user toggles classes."""
    rec = Recorder(tmp_path, (W, H), 30.0, default_classes(), disk_free=lambda _: PLENTY, policy=FULL)
    shown = _result(0)
    styles = [OverlayStyle(), OverlayStyle(), OverlayStyle(visible=frozenset({2, 3})), OverlayStyle(opacity=1.0)]
    for i, style in enumerate(styles):
        rec.offer(_frame(i), shown, style)
    rec.stop()
    _, rows = _files(tmp_path)
    assert rec.masks == 1 and {r["mask_file"] for r in rows} == {"rec-0001_masks/m000001.png"}
    overlay = _overlay_frames(tmp_path)
    # what the display painted: the mask (class 1) over the frame, as each frame's style said
    expected = [composite(_frame(i).image, render_overlay(shown.mask, default_classes(), style), shown.box)
                for i, style in enumerate(styles)]
    assert [int(np.abs(o[20, 20].astype(int) - e[20, 20]).max()) < 8 for o, e in zip(overlay, expected)] == [True] * 4
    assert np.abs(overlay[2][20, 20].astype(int) - _frame(2).image[20, 20]).max() < 6  # class 1 toggled off there
    assert np.abs(overlay[3][20, 20].astype(int) - _frame(3).image[20, 20]).max() > 100  # opaque


def test_the_gate_score_and_verdict_of_the_result_shown_or_withheld(tmp_path):
    """Each row: the gate's score and verdict of the result whose mask was shown with the frame, or
    was withheld because the gate said unsure; an unsure result is never painted."""
    rec = Recorder(tmp_path, (W, H), 30.0, default_classes(), disk_free=lambda _: PLENTY, policy=FULL)
    offers = [(None, None),                                   # 0: no result yet
              (_result(1, score=1.25), None),                 # 1: shown, the gate content
              (None, _result(1, score=7.5, unsure=True)),     # 2: withheld: the display said AI UNSURE
              (_result(3, score=8.0, unsure=True), None),     # 3: an unsure result handed as shown: not painted
              (None, _result(3, score=2.0)),                  # 4: hidden, not by the gate (stale): no figures
              (_result(5), None)]                             # 5: shown, a model without a gate
    for i, (result, withheld) in enumerate(offers):
        rec.offer(_frame(i), result, OverlayStyle(), withheld=withheld)
    rec.stop()
    assert rec.error == "" and rec.written == len(offers)
    videos, rows = _files(tmp_path)
    assert list(rows[0])[6:8] == ["gate_score", "ai_unsure"]
    assert [(r["overlay_shown"], r["mask_frame_id"], r["gate_score"], r["ai_unsure"]) for r in rows] == [
        ("0", "", "", "0"), ("1", "1", "1.25", "0"), ("0", "", "7.5", "1"), ("0", "", "8", "1"),
        ("0", "", "", "0"), ("1", "5", "", "0")]
    assert rec.masks == 2  # the unsure and the hidden results' masks are not kept: they were not painted
    shown = _overlay_frames(tmp_path)
    painted = [np.abs(shown[i][20, 20].astype(int) - _frame(i).image[20, 20]).max() > 30 for i in range(len(offers))]
    assert painted == [False, True, False, False, False, True]


def test_refuses_to_start_below_the_reserve(tmp_path):
    with pytest.raises(EndoSpineError, match="below the .* reserve"):
        Recorder(tmp_path, (W, H), 30.0, default_classes(), reserve_bytes=10 ** 9, disk_free=lambda _: 10 ** 6)


def test_stops_cleanly_when_the_disk_runs_low(tmp_path):
    free = iter([PLENTY, PLENTY, PLENTY, 10 ** 6])  # start, frame 0, frame 30, frame 60: low

    rec = _record(tmp_path, 90, reserve_bytes=10 ** 9, disk_free=lambda _: next(free, 10 ** 6))
    assert rec.written == 60
    assert "below the reserve" in rec.error
    videos, rows = _files(tmp_path)
    assert all(_decoded_frames(v) == 60 for v in videos)  # closed properly: every written frame plays
    assert len(rows) == 60


def test_disk_full_mid_write_keeps_what_was_written(tmp_path, monkeypatch):
    from models.core import video

    real_write = video.VideoWriter.write

    def failing_write(self, rgb):
        if self.frames >= 45:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, rgb)

    monkeypatch.setattr(video.VideoWriter, "write", failing_write)
    rec = _record(tmp_path, 80, disk_free=lambda _: PLENTY)
    assert rec.error == "disk full: recording stopped"
    assert rec.written == 45
    videos, rows = _files(tmp_path)
    raw = next(v for v in videos if v.name.endswith("_raw.mp4"))
    assert _decoded_frames(raw) == 45  # the frames before the failure are all there and play
    assert len(rows) == 45


def test_snapshot_writes_raw_and_overlay(tmp_path):
    paths = snapshot(tmp_path, _frame(3), _result(3), default_classes(), OverlayStyle(), policy=FULL)
    raw, shown = (read_image(p) for p in paths)
    assert np.array_equal(raw, _frame(3).image)
    assert not np.array_equal(shown[20, 20], raw[20, 20])  # the mask is painted there
    assert np.array_equal(shown[50, 80], raw[50, 80])      # and nowhere else


def _reduced(i: int) -> Frame:
    """A frame shown at half size, its full-resolution planes beside it (a 4K source on a 1080p view)."""
    import av

    from models.core.picture import Planes

    full = np.full((2 * H, 2 * W, 3), (40 + i * 7) % 256, np.uint8)
    planes = Planes.from_av(av.VideoFrame.from_ndarray(full, format="rgb24").reformat(format="yuv420p"))
    return Frame(frame_id=i, capture_time=i / 30, pts=i / 30, image=planes.view((W, H)), full=planes)


def test_a_reduced_view_is_recorded_and_snapshotted_at_full_resolution(tmp_path):
    rec = Recorder(tmp_path, _reduced(0).full_size, 30.0, default_classes(), disk_free=lambda _: PLENTY, policy=FULL)
    for i in range(6):
        while rec._queue.full():
            time.sleep(0.001)
        rec.offer(_reduced(i), _result(i), OverlayStyle())  # the mask's box in view pixels
    rec.stop()
    assert rec.written == 6 and rec.dropped == 0
    last = _overlay_frames(tmp_path)[-1]
    assert last.shape == (2 * H, 2 * W, 3)
    # the mask (view rows 10-30, columns 10-50) lands on full-resolution rows 20-60, columns 20-100
    assert np.abs(last[40, 60].astype(int) - last[100, 160]).sum() > 30 and np.abs(last[100, 160].astype(int) - 75).max() < 6
    paths = snapshot(tmp_path / "snaps", _reduced(3), _result(3), default_classes(), OverlayStyle(), policy=FULL)
    raw, shown = (read_image(p) for p in paths)
    assert raw.shape == shown.shape == (2 * H, 2 * W, 3)
    assert not np.array_equal(shown[40, 60], raw[40, 60]) and np.array_equal(shown[100, 160], raw[100, 160])


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_writer_thread_yields_the_cpu_to_the_display(tmp_path):
    import os
    import threading

    from app.recorder import NICE

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    rec = Recorder(tmp_path, (W, H), 30.0, default_classes(), disk_free=lambda _: PLENTY, policy=FULL)
    rec.offer(_frame(0), None, OverlayStyle())
    deadline = time.monotonic() + 10
    while rec.written == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert os.getpriority(os.PRIO_PROCESS, rec._thread.native_id) == min(19, base + NICE)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the display's own: unchanged
    finally:
        rec.stop()
