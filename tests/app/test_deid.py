"""Issue 21, measured: recordings, snapshots and `endospine deid` keep only the field of view of
synthetic tower frames (text burned in at all four corners and in a bottom band), after the H.264
round trip too, and their metadata is the allow-list, read back from the files."""
from __future__ import annotations

import csv
import json
import struct
import time

import cv2
import numpy as np
import pytest

from app.cli import main
from app.recorder import Recorder, next_number, snapshot
from app.recording import overlay_video
from models.core import video as video_module
from models.core.classes import default_classes
from models.core.deid import (
    CODEC_BAND_PX,
    DEFAULT_MARGIN_PX,
    DeidPolicy,
    disallowed_image,
    disallowed_video,
    image_metadata,
    video_metadata,
)
from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.optics.fov import Circle
from models.core.overlay import OverlayStyle
from models.core.types import Frame, Result
from tests.towerframes import Tower, decoded, max_beyond

M = DEFAULT_MARGIN_PX
BANDS = (0, 4, 8, CODEC_BAND_PX, 16)


@pytest.fixture(scope="module")
def tower():
    t = Tower(seed=1)
    img = t.frame(0)
    assert max_beyond(img, t.circle, M) == 255  # the text is there, outside the circle: the test means something
    return t


def _capture_writes(monkeypatch) -> dict:
    """What the recorder hands the encoder, per file: the frames as they are before compression."""
    seen: dict = {}
    real = video_module.VideoWriter.write

    def write(self, rgb):
        seen.setdefault(self.path.name, []).append(rgb.copy())
        real(self, rgb)

    monkeypatch.setattr(video_module.VideoWriter, "write", write)
    return seen


def _rows(path):
    lines = path.read_text().splitlines()
    return lines[0], list(csv.DictReader(lines[1:]))


def _record(folder, frames, results, policy, **kw) -> Recorder:
    size = (frames[0].shape[1], frames[0].shape[0])
    rec = Recorder(folder, size, 25.0, default_classes(), policy=policy, disk_free=lambda _: 10 ** 12, **kw)
    for i, (img, res) in enumerate(zip(frames, results)):
        while rec._queue.full():  # every frame, for the measure; the display drops instead
            time.sleep(0.001)
        rec.offer(Frame(i, i / 25, i / 25, img), res, OverlayStyle())
    rec.stop(60)
    assert rec.error == ""
    return rec


def test_recording_keeps_only_the_field_of_view(tower, tmp_path, monkeypatch, capsys):
    seen = _capture_writes(monkeypatch)
    n = 16
    w, h = tower.size
    results = [Result(i, tower.labels(i), "model-x", box=(0, 0, w, h)) if i % 2 else None for i in range(n)]
    rec = _record(tmp_path, [tower.frame(i) for i in range(n)], results, DeidPolicy(model_id="model-x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-0001_frames.csv", "rec-0001_masks",
                                                          "rec-0001_raw.mp4"]  # a session number, no time
    overlay_video(tmp_path / "rec-0001_frames.csv", tmp_path / "rec-0001_overlay.mp4")  # made from them afterwards
    note, rows = _rows(tmp_path / "rec-0001_frames.csv")
    assert note.startswith("# EndoSpine ") and "field of view only" in note and "model model-x" in note
    assert [r["frame_region"] for r in rows] == ["fov"] * n and rec.black_frames == 0
    circles = [Circle(float(r["fov_cx"]), float(r["fov_cy"]), float(r["fov_r"])) for r in rows]
    assert all(abs(c.r - tower.circle.r) < 0.5 and abs(c.cx - tower.circle.cx) < 0.5 for c in circles)
    measured = {}
    for name in ("rec-0001_raw.mp4", "rec-0001_overlay.mp4"):
        # before the encoder: 100% of frames, every pixel beyond the circle + margin exactly 0
        assert len(seen[name]) == n
        assert [max_beyond(img, c, M) for img, c in zip(seen[name], circles)] == [0] * n
        # after the H.264 round trip: nothing above 8 levels beyond the codec's band
        frames = decoded(tmp_path / name)
        assert len(frames) == n
        worst = [max(max_beyond(img, c, M + b) for img, c in zip(frames, circles)) for b in BANDS]
        measured[name] = dict(zip(BANDS, worst))
        assert worst[BANDS.index(CODEC_BAND_PX)] <= 8, measured
        if name.endswith("_raw.mp4"):  # the picture itself is kept: the inside as it was (the encoder's loss only)
            inside = [np.abs(f.astype(int) - s.astype(int)).mean() for f, s in zip(frames, seen[name])]
            assert max(inside) < 2.0
        meta = video_metadata(tmp_path / name)
        assert disallowed_video(meta) == [], meta
        assert meta["container"]["frames"] == "field-of-view" and meta["container"]["model_id"] == "model-x"
    # the overlay video is painted on the decoded raw video: the frames without a mask are those frames
    painted = [np.abs(r.astype(int) - o.astype(int)).mean() for r, o in zip(decoded(tmp_path / "rec-0001_raw.mp4"),
                                                                          seen["rec-0001_overlay.mp4"])]
    assert all(d > 1 for d in painted[1::2]) and all(d < 0.05 for d in painted[0::2]), painted
    with capsys.disabled():
        print(f"\nrecording 640x360 crf 18: max level beyond circle + {M:g} px + band {{band: max}}: {measured}")


def test_recording_is_black_until_a_circle_is_known(tower, tmp_path, monkeypatch):
    seen = _capture_writes(monkeypatch)
    plain = np.full((tower.size[1], tower.size[0], 3), 128, np.uint8)
    plain[:20, :200] = 255  # text on a plain camera picture
    frames = [plain, plain, tower.frame(0), tower.frame(1)]
    rec = _record(tmp_path, frames, [None] * 4, DeidPolicy())
    _, rows = _rows(tmp_path / "rec-0001_frames.csv")
    assert [r["frame_region"] for r in rows] == ["black", "black", "fov", "fov"] and rec.black_frames == 2
    raw = seen["rec-0001_raw.mp4"]
    assert not raw[0].any() and not raw[1].any()           # never the full frame with its text
    assert raw[2].any() and max_beyond(raw[2], rec.circle, M) == 0


def test_keep_full_frame_says_so_everywhere(tower, tmp_path, monkeypatch):
    seen = _capture_writes(monkeypatch)
    policy = DeidPolicy(keep_full_frame=True)
    _record(tmp_path, [tower.frame(0), tower.frame(1)], [None, None], policy)
    note, rows = _rows(tmp_path / "rec-0001_frames.csv")
    assert "FULL FRAME" in note and {r["frame_region"] for r in rows} == {"full"}
    assert max_beyond(seen["rec-0001_raw.mp4"][0], tower.circle, M) == 255  # the text is kept, as asked
    meta = video_metadata(tmp_path / "rec-0001_raw.mp4")
    assert meta["container"]["frames"] == "full-frame" and "FULL FRAME" in meta["container"]["comment"]
    paths = snapshot(tmp_path / "s", Frame(0, 0, 0, tower.frame(0)), None, default_classes(), OverlayStyle(), policy)
    assert image_metadata(paths[0].read_bytes())["tEXt:frames"] == "full-frame"


def test_snapshots_keep_only_the_field_of_view(tower, tmp_path):
    w, h = tower.size
    frame = Frame(7, 0.0, 0.0, tower.frame(3))
    result = Result(7, tower.labels(3), "model-x", box=(0, 0, w, h))
    policy = DeidPolicy(model_id="model-x")
    paths = snapshot(tmp_path, frame, result, default_classes(), OverlayStyle(), policy)
    assert [p.name for p in paths] == ["snap-0001_f000007_raw.png", "snap-0001_f000007_overlay.png"]
    circle = policy.finder()(frame.image)
    for p in paths:
        img = read_image(p)
        assert max_beyond(img, circle, M) == 0 and img.any()
        meta = image_metadata(p.read_bytes())
        assert disallowed_image(meta) == [] and meta["tEXt:model_id"] == "model-x"
    assert snapshot(tmp_path, frame, None, default_classes(), OverlayStyle(), policy)[0].name.startswith("snap-0002")
    plain = Frame(8, 0.0, 0.0, np.full((h, w, 3), 128, np.uint8))
    with pytest.raises(EndoSpineError, match="no field of view"):
        snapshot(tmp_path / "none", plain, None, default_classes(), OverlayStyle(), policy)
    assert not (tmp_path / "none").exists()
    held = snapshot(tmp_path / "held", plain, None, default_classes(), OverlayStyle(), policy, held=circle)
    assert max_beyond(read_image(held[0]), circle, M) == 0  # a running recording's circle


@pytest.mark.unit
def test_session_numbers_survive_restarts(tmp_path):
    assert next_number(tmp_path / "missing", "rec") == 1
    (tmp_path / "rec-0009_raw.mp4").touch()
    (tmp_path / "snap-0002_f000001_raw.png").touch()
    assert next_number(tmp_path, "rec") == 10 and next_number(tmp_path, "snap") == 3


# -- endospine deid ---------------------------------------------------------------------------------
def test_deid_video(tower, tmp_path, capsys):
    src = tower.video(tmp_path / "case.mp4", frames=12, audio=True,
                      tags={"title": "DOE^JOHN", "artist": "Dr SMITH", "comment": "MRN 00482913",
                            "creation_time": "2024-05-06T14:32:07Z"})
    before = video_metadata(src)
    assert before["container"]["creation_time"].startswith("2024-05-06") and "encoder" in before["container"]
    out = tmp_path / "clean" / "case.mp4"
    assert main(["deid", str(src), "--out", str(out), "-q"]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("deid: 12 frames") and "blacked out" in line[0]
    report = json.loads((tmp_path / "clean" / "case.deid.json").read_text())
    entry = report["files"][0]
    c = entry["circle"]
    assert entry["frames"] == 12 and c["source"] == "detected"
    assert abs(c["cx"] - tower.circle.cx) < 0.5 and abs(c["r"] - tower.circle.r) < 0.5
    assert 0.5 < entry["black_share"] < 0.9
    for key in ("title", "artist", "comment", "creation_time", "encoder", "stream 0: handler_name"):
        assert key in entry["metadata_dropped"], entry["metadata_dropped"]
    assert entry["streams_dropped"] == ["stream 1 (audio)"] and entry["metadata_outside_allow_list"] == []
    meta = video_metadata(out)
    assert disallowed_video(meta) == [] and len(meta["streams"]) == 1
    circle = Circle(c["cx"], c["cy"], c["r"])
    frames = decoded(out)
    worst = [max(max_beyond(f, circle, M + b) for f in frames) for b in BANDS]
    assert len(frames) == 12 and worst[BANDS.index(CODEC_BAND_PX)] <= 8, dict(zip(BANDS, worst))
    with capsys.disabled():
        print(f"\ndeid video 640x360 crf 18: max level beyond circle + {M:g} px + band: {dict(zip(BANDS, worst))}")


def _jpeg_with_exif(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    data = buf.tobytes()
    exif = b"Exif\x00\x00" + b"II*\x00" + b"DOE^JOHN 2024:05:06 14:32:07"
    comment = b"MRN 00482913"
    return (data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
            + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:])


def test_deid_folder_of_frames(tower, tmp_path, capsys):
    src = tmp_path / "frames"
    src.mkdir()
    cv2.imwrite(str(src / "a_000000.png"), cv2.cvtColor(tower.frame(0), cv2.COLOR_RGB2BGR))
    (src / "a_000001.jpg").write_bytes(_jpeg_with_exif(tower.frame(1)))
    cv2.imwrite(str(src / "a_000002.bmp"), cv2.cvtColor(tower.frame(2), cv2.COLOR_RGB2BGR))
    out = tmp_path / "clean"
    assert main(["deid", str(src), "--out", str(out), "-q"]) == 0
    assert "deid: 3 images" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_000000.png", "a_000001.jpg", "a_000002.png", "deid.json"]
    report = json.loads((out / "deid.json").read_text())
    by_name = {e["input"].rsplit("/", 1)[-1]: e for e in report["files"]}
    assert set(by_name["a_000001.jpg"]["metadata_dropped"]) == {"APP1:Exif", "COM"}
    assert by_name["a_000002.bmp"]["converted"]
    for e in report["files"]:
        c = e["circle"]
        img = read_image(e["output"])
        circle = Circle(c["cx"], c["cy"], c["r"])
        lossless = e["output"].endswith(".png")
        assert max_beyond(img, circle, M) == 0 if lossless else max_beyond(img, circle, M + CODEC_BAND_PX) <= 8
        assert disallowed_image(image_metadata(open(e["output"], "rb").read())) == []


def test_deid_refuses_a_plain_camera_unless_given_a_region(tmp_path, capsys):
    plain = tmp_path / "plain.mp4"
    with video_module.VideoWriter(plain, 96, 64, 10, preset="ultrafast") as w:
        for _ in range(5):
            img = np.full((64, 96, 3), 128, np.uint8)
            img[:8, :60] = 255
            w.write(img)
    assert main(["deid", str(plain), "--out", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no field of view" in err[0] and "--region" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mp4"]  # nothing written
    assert main(["deid", str(plain), "--out", str(tmp_path / "o.mp4"), "--region", "48,36,20", "-q"]) == 0
    frames = decoded(tmp_path / "o.mp4")
    assert max(max_beyond(f, Circle(48, 36, 20), M + CODEC_BAND_PX) for f in frames) <= 8
    assert "(region)" in capsys.readouterr().out
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "x.png"), np.full((64, 96, 3), 128, np.uint8))
    assert main(["deid", str(folder), "--out", str(tmp_path / "imgs_out")]) == 1
    assert "x.png: no field of view found in 1 of 1 images" in capsys.readouterr().err.replace(
        " (the endoscope's circle on a dark surround)", "")
    assert not (tmp_path / "imgs_out").exists() and not list(tmp_path.glob(".imgs_out*"))
    assert main(["deid", str(plain), "--out", str(tmp_path / "o2.mp4"), "--region", "500,36,20"]) == 1
    assert "outside the 96x64 frame" in capsys.readouterr().err
