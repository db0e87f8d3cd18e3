"""Issue 21 for `endospine render`: the overlay video keeps only the field of view of synthetic tower
frames (text burned in at all four corners and in a bottom band), exactly 0 beyond the circle +
margin before the encoder and at most 8 levels beyond the codec's band after it, as a recording;
black until a circle is known; the CSV has the recording's note and circle columns; the model
still sees whole frames; keep_full_frame (flag or profile) keeps the text and says so."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

import app.render as render
from app.cli import main
from models.core import video as video_module
from models.core.deid import CODEC_BAND_PX, DEFAULT_MARGIN_PX, KeepMask, disallowed_video, video_metadata
from models.core.optics.fov import Circle
from models.core.optics.profile import DeidSection, FovSection, default_profile, save_profile
from tests.towerframes import Tower, decoded, max_beyond

M = DEFAULT_MARGIN_PX
N = 10
ROUNDED = 0.02  # the CSV's circle has 2 decimals: pixels this close to the edge may go either way


@pytest.fixture(scope="module")
def tower(tmp_path_factory):
    t = Tower(seed=1)
    t.path = t.video(tmp_path_factory.mktemp("tower") / "tower.mp4", frames=N)
    assert max_beyond(decoded(t.path)[0], t.circle, M + CODEC_BAND_PX) > 200  # the text is in the source
    return t


@pytest.fixture(scope="module")
def late_scope(tower, tmp_path_factory):
    """A plain camera picture with text for 2 frames, then the tower's endoscope frames."""
    plain = np.full((tower.size[1], tower.size[0], 3), 128, np.uint8)
    plain[:20, :200] = 255
    path = tmp_path_factory.mktemp("late") / "late.mp4"
    with video_module.VideoWriter(path, *tower.size, fps=25, crf=18, preset="ultrafast") as w:
        for img in [plain, plain] + [tower.frame(t) for t in range(4)]:
            w.write(img)
    return path


def _capture(monkeypatch) -> dict:
    """What render hands the encoder, what it painted, and what the model was given."""
    seen = {"written": [], "painted": [], "model": []}
    real_write, real_composite, real_segment = video_module.VideoWriter.write, render.composite, render.segment_frame

    def write(self, rgb):
        seen["written"].append(rgb.copy())
        real_write(self, rgb)

    def composite(frame, rgba, box=None):
        seen["painted"].append(out := real_composite(frame, rgba, box))
        return out

    def segment(runtime, stage, image, frame_id):
        seen["model"].append(image.copy())
        return real_segment(runtime, stage, image, frame_id)

    monkeypatch.setattr(video_module.VideoWriter, "write", write)
    monkeypatch.setattr(render, "composite", composite)
    monkeypatch.setattr(render, "segment_frame", segment)
    return seen


def _render(source, tmp_path, model, capsys, *extra):
    out, table = tmp_path / "o.mp4", tmp_path / "f.csv"
    assert main(["render", str(source), "--out", str(out), "--model", str(model), "--frames-csv", str(table),
                 *extra]) == 0
    captured = capsys.readouterr()
    lines = table.read_text().splitlines()
    return out, json.loads(captured.out.strip().splitlines()[-1]), lines[0], list(csv.DictReader(lines[1:])), \
        captured.err


def _circle(row) -> Circle:
    return Circle(float(row["fov_cx"]), float(row["fov_cy"]), float(row["fov_r"]))


def test_render_keeps_only_the_field_of_view(tower, tiny_model_dir, tmp_path, monkeypatch, capsys):
    seen = _capture(monkeypatch)
    out, summary, note, rows, _ = _render(tower.path, tmp_path, tiny_model_dir, capsys)
    assert summary["frames"] == N and summary["frames_kept"] == "field-of-view" and summary["black_frames"] == 0
    assert note.startswith("# EndoSpine ") and "field of view only" in note and f"model {summary['model']}" in note
    assert list(rows[0])[-4:] == ["frame_region", "fov_cx", "fov_cy", "fov_r"]
    assert [r["frame_region"] for r in rows] == ["fov"] * N
    circles = [_circle(r) for r in rows]
    assert all(abs(c.r - tower.circle.r) < 0.5 and abs(c.cx - tower.circle.cx) < 0.5 for c in circles)
    # the model saw whole frames, text included: only the pixels written are masked
    assert len(seen["model"]) == N
    assert min(max_beyond(img, tower.circle, M + CODEC_BAND_PX) for img in seen["model"]) > 200
    # before the encoder: every pixel beyond the circle + margin exactly 0, inside the overlay as painted
    assert len(seen["written"]) == len(seen["painted"]) == N
    for i, (img, painted, c) in enumerate(zip(seen["written"], seen["painted"], circles)):
        assert max_beyond(img, c, M + ROUNDED) == 0, i
        keep = KeepMask(tower.size, c, M - ROUNDED).keep.astype(bool)
        np.testing.assert_array_equal(img[keep], painted[keep], err_msg=f"frame {i}")
    # after the H.264 round trip: nothing above 8 levels beyond the codec's band
    frames = decoded(out)
    assert len(frames) == N
    measured = {b: max(max_beyond(img, c, M + b) for img, c in zip(frames, circles))
                for b in (0, 4, 8, CODEC_BAND_PX, 16)}
    assert measured[CODEC_BAND_PX] <= 8, measured
    with capsys.disabled():
        print(f"\nrender 640x360 crf 20: max level beyond circle + {M:g} px + band {{band: max}}: {measured}")
    meta = video_metadata(out)
    assert disallowed_video(meta) == [], meta
    assert meta["container"]["frames"] == "field-of-view" and meta["container"]["model_id"] == summary["model"]


@pytest.mark.parametrize("fixed", [False, True])
def test_render_is_black_until_a_circle_is_known(tower, late_scope, tiny_model_dir, tmp_path, monkeypatch, capsys,
                                                 fixed):
    """Detected: the plain frames are written all black, counted and warned about. With a profile's
    fixed circle the circle is known from the first frame: the field of view of every frame."""
    seen = _capture(monkeypatch)
    extra = []
    if fixed:
        c = tower.circle
        fov = FovSection(mode="fixed", frame_size=tower.size, center=(c.cx, c.cy), radius=c.r)
        extra = ["--profile", str(save_profile(replace(default_profile(), fov=fov), tmp_path / "p.yaml"))]
    _, summary, _, rows, err = _render(late_scope, tmp_path, tiny_model_dir, capsys, *extra)
    written = seen["written"]
    assert len(written) == len(rows) == 6
    if fixed:
        assert [r["frame_region"] for r in rows] == ["fov"] * 6 and summary["black_frames"] == 0
        assert all(_circle(r) == Circle(round(c.cx, 2), round(c.cy, 2), round(c.r, 2)) for r in rows)
        assert all(max_beyond(img, c, M) == 0 for img in written) and "all black" not in err  # c: exact
        return
    assert [r["frame_region"] for r in rows] == ["black", "black", "fov", "fov", "fov", "fov"]
    assert [r["fov_r"] for r in rows[:2]] == ["", ""] and summary["black_frames"] == 2
    assert "2 of 6 frames written all black" in err
    assert not written[0].any() and not written[1].any()  # never the plain frame with its text
    assert written[2].any() and all(max_beyond(img, _circle(r), M + ROUNDED) == 0
                                    for img, r in zip(written[2:], rows[2:]))


@pytest.mark.parametrize("how", ["flag", "profile"])
def test_keep_full_frame_keeps_the_text_and_says_so(tower, tiny_model_dir, tmp_path, monkeypatch, capsys, how):
    seen = _capture(monkeypatch)
    if how == "flag":
        extra = ["--keep-full-frame"]
    else:
        profile = replace(default_profile(), deid=DeidSection(keep_full_frame=True))
        extra = ["--profile", str(save_profile(profile, tmp_path / "p.yaml"))]
    out, summary, note, rows, _ = _render(tower.path, tmp_path, tiny_model_dir, capsys, "--max-frames", "3", *extra)
    assert summary["frames_kept"] == "full-frame" and "FULL FRAME" in note
    assert [(r["frame_region"], r["fov_cx"], r["fov_r"]) for r in rows] == [("full", "", "")] * 3
    assert all(max_beyond(img, tower.circle, M + CODEC_BAND_PX) > 200 for img in seen["written"])  # the text
    for img, painted in zip(seen["written"], seen["painted"]):
        np.testing.assert_array_equal(img, painted)
    meta = video_metadata(out)
    assert meta["container"]["frames"] == "full-frame" and "FULL FRAME" in meta["container"]["comment"]


def test_frames_of_another_size_keep_their_field_of_view(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """A source whose picture changes size mid-stream: frames of another size than the video's are
    scaled to fit it, and their field of view (found in the frame as decoded) is kept in the
    video's pixels."""
    from tests.models.core.sources.test_file_faults import _remux

    small, large = Tower(seed=1, width=640, height=360), Tower(seed=2, width=960, height=720)
    a = _remux(small.video(tmp_path / "a.mp4", frames=3), tmp_path / "a.h264", "h264")
    b = _remux(large.video(tmp_path / "b.mp4", frames=3), tmp_path / "b.h264", "h264")
    both = tmp_path / "both.h264"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    seen = _capture(monkeypatch)
    _, summary, _, rows, _ = _render(both, tmp_path, tiny_model_dir, capsys)
    assert summary["frames"] == 6 and summary["resized"] == 3 and summary["black_frames"] == 0
    assert [r["frame_region"] for r in rows] == ["fov"] * 6
    H, W = seen["written"][0].shape[:2]
    for i, (img, r) in enumerate(zip(seen["written"], rows)):
        tower = small if i < 3 else large
        (iw, ih), c = tower.size, tower.circle
        if (iw, ih) != (W, H):  # scaled to fit, aspect kept, centred: the circle goes with it
            s = min(W / iw, H / ih)
            x, y = (W - round(iw * s)) // 2, (H - round(ih * s)) // 2
            c = Circle((c.cx + 0.5) * s - 0.5 + x, (c.cy + 0.5) * s - 0.5 + y, c.r * s)
        got = _circle(r)
        assert abs(got.cx - c.cx) < 0.5 and abs(got.cy - c.cy) < 0.5 and abs(got.r - c.r) < 0.5, (i, got, c)
        assert img.shape == (H, W, 3)
        assert max_beyond(img, got, M + ROUNDED) == 0 and img.any(), i
