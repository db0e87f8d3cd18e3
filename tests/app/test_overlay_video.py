"""`endospine overlay-video`: a recording's overlay video made afterwards from its raw video, its
masks and its CSV; what is missing or damaged is one line naming the file, and nothing is left."""
from __future__ import annotations

import time

import av
import numpy as np
import pytest

from app.cli import main
from app.recorder import Recorder
from models.core.classes import default_classes
from models.core.deid import DeidPolicy
from models.core.overlay import OverlayStyle
from models.core.types import Frame, Result

W, H = 96, 64


def _record(folder, n: int = 8):
    rec = Recorder(folder, (W, H), 30.0, default_classes(), disk_free=lambda _: 10 ** 12,
                   policy=DeidPolicy(keep_full_frame=True))
    for i in range(n):
        while rec._queue.full():
            time.sleep(0.001)
        mask = np.zeros((H // 2, W // 2), np.uint8)  # a mask at half the box's size, as the model's are
        mask[5:15, 5:25] = 2
        result = Result(i, mask, "test", {}, box=(0, 0, W, H), capture_time=i / 30) if i >= 2 else None
        rec.offer(Frame(i, i / 30, i / 30, np.full((H, W, 3), 90, np.uint8)), result, OverlayStyle())
    rec.stop()
    assert rec.error == ""
    return rec


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["overlay-video", *map(str, args), "-q"])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_overlay_video_paints_the_recorded_masks(tmp_path, capsys):
    rec = _record(tmp_path / "rec")
    code, out, err = _run(capsys, rec.csv_path, "--out", tmp_path / "o.mp4")
    assert code == 0 and err == "" and out.endswith("8 frames, the mask painted on 6")
    with av.open(str(tmp_path / "o.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # class 2 (ligament) at mask rows 5-15, columns 5-25 -> frame rows 10-30, columns 10-50
    assert [int(np.abs(f[20, 30].astype(int) - 90).max()) > 20 for f in frames] == [False] * 2 + [True] * 6
    assert all(int(np.abs(f[50, 80].astype(int) - 90).max()) < 6 for f in frames)


@pytest.mark.parametrize("damage, message", [
    (lambda rec: (rec.folder / "rec-0001_masks" / "m000003.png").unlink(), "mask .*m000003.png is missing"),
    (lambda rec: (rec.folder / "rec-0001_masks" / "m000003.png").write_bytes(b"not a png"), "m000003.png"),
    (lambda rec: (rec.folder / "rec-0001_raw.mp4").unlink(), "rec-0001_raw.mp4: missing"),
    (lambda rec: (rec.folder / "rec-0001_masks" / "recording.json").write_text("{"), "recording.json: not a valid"),
    (lambda rec: rec.csv_path.write_text(rec.csv_path.read_text().replace("mode=fill", "mode=blur")),
     "overlay_style .* is not valid"),
])
def test_a_damaged_recording_is_one_line_and_no_output(tmp_path, capsys, damage, message):
    import re

    rec = _record(tmp_path / "rec")
    damage(rec)
    code, out, err = _run(capsys, rec.csv_path, "--out", tmp_path / "o.mp4")
    assert code != 0 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert "Traceback" not in err and not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*partial*"))


def test_not_a_recording(tmp_path, capsys):
    other = tmp_path / "table.csv"
    other.write_text("a,b\n1,2\n")
    code, _, err = _run(capsys, other, "--out", tmp_path / "o.mp4")
    assert code != 0 and "not a recording's CSV" in err and len(err.splitlines()) == 1


def test_a_recording_cut_short_says_so(tmp_path, capsys):
    rec = _record(tmp_path / "rec")
    rows = rec.csv_path.read_text().splitlines()
    rec.csv_path.write_text("\n".join(rows + [rows[-1].replace("7,7,", "8,8,", 1)]) + "\n")  # one row more than frames
    code, out, _ = _run(capsys, rec.csv_path, "--out", tmp_path / "o.mp4")
    assert code == 0 and "ends after 8 of the CSV's 9 frames" in out


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("frame_region,", "region,"),                # a column renamed
    lambda text: "\n".join(line.rsplit(",", 4)[0] for line in text.splitlines()) + "\n",  # rows cut short
])
def test_a_csv_edited_by_hand_is_one_line(tmp_path, capsys, edit):
    rec = _record(tmp_path / "rec")
    rec.csv_path.write_text(edit(rec.csv_path.read_text()))
    code, _, err = _run(capsys, rec.csv_path, "--out", tmp_path / "o.mp4")
    assert code != 0 and len(err.splitlines()) == 1 and "rec-0001_frames.csv" in err and "Traceback" not in err, err
