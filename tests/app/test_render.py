from __future__ import annotations

import csv
import json

import av
import numpy as np
import pytest

from app.cli import main
from models.core.overlay import composite, render_overlay
from models.core.runtime.postprocess import segment_frame as render_segment


def _csv_rows(path) -> list[dict]:
    """The rows of render's per-frame CSV (its first line is a `#` note, as a recording's)."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# EndoSpine ")
    return list(csv.DictReader(lines[1:]))


@pytest.mark.unit
def test_composite_blends_premultiplied():
    frame = np.full((4, 6, 3), 100, np.uint8)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (100, 0, 0, 128)  # 50% red (premultiplied: 200 * 0.5)
    out = composite(frame, rgba, (2, 1, 2, 2))
    assert tuple(out[1, 2]) == (150, 50, 50)
    assert (out[0] == 100).all() and tuple(out[2, 3]) == (100, 100, 100)
    assert frame[1, 2, 0] == 100  # the input is untouched


def test_render_writes_every_frame_and_a_csv(small_video, tiny_model_dir, tmp_path, capsys):
    out, table = tmp_path / "o.mp4", tmp_path / "f.csv"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--frames-csv", str(table), "--max-frames", "20"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 20
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20
    rows = _csv_rows(table)
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert {"pts", "bone_area", "ligament_area", "disc_area", "inference_ms", "overlay_shown", "gate_score",
            "ai_unsure"} <= set(rows[0])
    scored = [r["gate_score"] for r in rows if r["gate_score"] != ""]
    assert (summary["gate_score_median"] is None) == (not scored)  # None: the model has no gate
    assert summary["unsure"] == sum(r["ai_unsure"] == "1" for r in rows)
    assert all(r["overlay_shown"] == str(1 - int(r["ai_unsure"])) for r in rows)


def test_a_frame_the_gate_calls_unsure_is_written_without_overlay(small_video, tiny_model_dir, tmp_path, monkeypatch,
                                                                  capsys):
    """As live hides the overlay when the stage says unsure (AI UNSURE), render writes the frame as
    it came; its row says so, the summary counts it, one warning names the first frame of a run.
    The stage decides, through its hysteresis: frame 1 is out of distribution but alone, not gated."""
    import app.render as render
    from tests.app.gated_runtime import GatedRuntime

    def opaque(labels, classes, style):  # an overlay no codec can hide: solid magenta over the box
        rgba = np.zeros((*labels.shape, 4), np.uint8)
        rgba[...] = (255, 0, 255, 255)
        return rgba

    monkeypatch.setattr(render, "SegmentationRuntime", GatedRuntime)
    monkeypatch.setattr(render, "render_overlay", opaque)
    out, table = tmp_path / "o.mp4", tmp_path / "f.csv"
    n = len(GatedRuntime.SCORES)
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--frames-csv", str(table), "--max-frames", str(n)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == n and summary["unsure"] == sum(GatedRuntime.UNSURE) == 3 and summary["refused"] == 0
    assert summary["gate_score_median"] == 0.5
    assert captured.err.count("AI UNSURE") == 1 and "frame 2: AI UNSURE" in captured.err
    rows = _csv_rows(table)
    assert [r["ai_unsure"] == "1" for r in rows] == list(GatedRuntime.UNSURE)
    assert [r["overlay_shown"] == "0" for r in rows] == list(GatedRuntime.UNSURE)
    assert [float(r["gate_score"]) for r in rows] == list(GatedRuntime.SCORES)
    for r in rows:  # the model's output, only not painted; unsure pixels counted as their class
        areas = [float(r[f"{name}_area"]) for name in ("bone", "ligament", "disc")]
        assert r["refused"] == "" and 0 < sum(areas) <= 1.0001
    with av.open(str(out)) as c:
        written = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    source = [f.image.astype(int) for f in _decoded(small_video, n)]
    assert len(written) == n
    magenta = [np.abs(w - s).mean() > 40 for w, s in zip(written, source)]
    assert magenta == [not u for u in GatedRuntime.UNSURE]


def test_render_gates_the_frames_live_gates(small_video, tiny_model_dir, tmp_path, monkeypatch):
    """The same frames through the live worker and through render, with the same gated model: the
    same scores, the same AI UNSURE frames, the same masks (unsure pixels marked alike)."""
    import app.render as render
    from tests.app.gated_runtime import GatedRuntime

    n = len(GatedRuntime.SCORES)
    painted = []
    monkeypatch.setattr(render, "SegmentationRuntime", GatedRuntime)
    monkeypatch.setattr(render, "segment_frame", lambda *a: painted.append(render_segment(*a)) or painted[-1])
    table = tmp_path / "f.csv"
    render.render_video(str(small_video), tmp_path / "o.mp4", tiny_model_dir, frames_csv=table, max_frames=n,
                        progress=False)
    rows = _csv_rows(table)
    live = _live_results(tiny_model_dir, _decoded(small_video, n), None, runtime="tests.app.gated_runtime:GatedRuntime")
    assert [r.unsure for r in live] == [row["ai_unsure"] == "1" for row in rows] == list(GatedRuntime.UNSURE)
    assert [r.score for r in live] == [float(row["gate_score"]) for row in rows]
    for i, ((labels, box, _), result) in enumerate(zip(painted, live)):
        assert tuple(box) == tuple(result.box), i
        np.testing.assert_array_equal(labels, result.mask, err_msg=f"frame {i}")


def test_render_bad_input(tmp_path, tiny_model_dir, capsys):
    assert main(["render", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o.mp4"),
                 "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "not found" in err
    assert main(["render", "synthetic", "--out", str(tmp_path / "o.mp4"), "--model", str(tmp_path)]) == 1
    assert "manifest.yaml" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


# -- render paints what the live display paints ----------------------------------------------------
def _decoded(video, n: int) -> list:
    """The first n frames of a video, decoded the way render decodes them."""
    from app.compose import open_source_stage

    source = open_source_stage(str(video), realtime=False)
    try:
        return [source.read() for _ in range(n)]
    finally:
        source.close()


def _live_masks(model_dir, frames, post) -> list[tuple[np.ndarray, tuple]]:
    """(mask, box) of every frame through the live worker, as the display would paint them."""
    return [(r.mask, r.box) for r in _live_results(model_dir, frames, post)]


def _live_results(model_dir, frames, post, runtime: str | None = None) -> list:
    """The real supervised worker, fed one frame at a time and waiting for each answer (as in
    review mode) and configured as `endospine run` configures it (runtime: another "module:Class"
    for it to load): the Result of every frame."""
    import time

    from app.ai.supervisor import AIState, InferenceClient, worker_config
    from app.capture_thread import LatestFrame

    store = LatestFrame()
    overrides = {**({"post": post} if post else {}), **({"runtime": runtime} if runtime else {})}
    client = InferenceClient(worker_config(str(model_dir), **overrides), store)
    client.start()
    out = []
    try:
        end = time.monotonic() + 60
        while client.state is not AIState.RUNNING and time.monotonic() < end:
            time.sleep(0.02)
        for frame in frames:
            store.put(frame)
            end = time.monotonic() + 20
            while not client.answered(frame.frame_id) and time.monotonic() < end:
                time.sleep(0.002)
            result = client.latest()
            assert result is not None and result.frame_id == frame.frame_id, client.message
            out.append(result)
    finally:
        client.stop()
    return out


@pytest.mark.parametrize("post", [None, "capped"])
def test_render_paints_the_live_masks(small_video, tiny_model_dir, tmp_path, monkeypatch, post):
    """Same frames through `render` and through the live worker: the very same label maps."""
    import app.render as render
    from models.core.runtime.postprocess import PostSettings

    if post == "capped":  # a mask cap under the box's size, and a threshold: both sides must apply them
        post = PostSettings(mask_max_side=50, thresholds=((1, 0.26),))
    painted = []
    original = render.composite

    def spy(frame, rgba, box=None):
        painted.append(box)
        return original(frame, rgba, box)

    def spy_overlay(labels, classes, style):
        painted.append(labels.copy())
        return render_overlay(labels, classes, style)

    monkeypatch.setattr(render, "composite", spy)
    monkeypatch.setattr(render, "render_overlay", spy_overlay)
    n = 12
    summary = render.render_video(str(small_video), tmp_path / "o.mp4", tiny_model_dir, max_frames=n,
                                  progress=False, post=post)
    assert summary["frames"] == n and summary["refused"] == 0
    rendered = list(zip(painted[0::2], painted[1::2]))
    live = _live_masks(tiny_model_dir, _decoded(small_video, n), post)
    assert len(rendered) == len(live) == n
    for i, ((labels, box), (mask, live_box)) in enumerate(zip(rendered, live)):
        assert tuple(box) == tuple(live_box), i
        np.testing.assert_array_equal(labels, mask, err_msg=f"frame {i}")
    if post is not None:
        assert live[0][0].shape[0] <= 50
    else:  # sharp enough to see the smoothing: without it, some frame's labels differ
        from models.core.runtime.backends import SegmentationRuntime
        from models.core.runtime.postprocess import PostStage, segment_frame

        runtime = SegmentationRuntime(tiny_model_dir)
        stage = PostStage(runtime.classes, PostSettings(smoothing=0.0))
        unsmoothed = [segment_frame(runtime, stage, f.image, f.frame_id)[0] for f in _decoded(small_video, n)]
        assert any((a != b).any() for a, (b, _) in zip(unsmoothed, live))


# -- refused outputs ---------------------------------------------------------------------------
def _model_claiming(tiny_model_dir, tmp_path, n: int):
    """A copy of the 4-class tiny model whose manifest claims n classes (the files still verify;
    resealed, as someone who knows the format would)."""
    import shutil

    import yaml

    from models.core.runtime.manifest import write_sealed

    folder = tmp_path / f"claims-{n}"
    shutil.copytree(tiny_model_dir, folder)
    doc = yaml.safe_load((folder / "manifest.yaml").read_text())
    doc["classes"]["classes"] = [{"id": i, "name": f"c{i}", "color": [i * 30, 0, 0]} for i in range(n)]
    write_sealed(folder, doc)
    return folder


@pytest.mark.parametrize("claimed", [2, 8])
def test_render_refuses_a_model_with_another_class_count(small_video, tiny_model_dir, tmp_path, capsys, claimed):
    """As `run` shows AI OUTPUT REJECTED, render refuses, and stops where live would restart."""
    out = tmp_path / "o.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model",
                 str(_model_claiming(tiny_model_dir, tmp_path, claimed))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "10 AI outputs refused in a row" in err[-1] and f"expected ({claimed}, h, w)" in err[-1], err
    assert "frame 9" in err[-1] and not out.exists()


def test_an_isolated_refused_frame_is_written_without_overlay_and_counted(small_video, tiny_model_dir, tmp_path,
                                                                           monkeypatch, capsys):
    from models.core.runtime.backends import SegmentationRuntime

    real = SegmentationRuntime.probabilities
    calls = []

    def nan_on_third(self, rgb):
        probs, box, timings = real(self, rgb)
        calls.append(1)
        if len(calls) == 3:
            probs = probs.copy()
            probs[0, 0, 0] = np.nan
        return probs, box, timings

    monkeypatch.setattr(SegmentationRuntime, "probabilities", nan_on_third)
    out, table = tmp_path / "o.mp4", tmp_path / "f.csv"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--frames-csv", str(table), "--max-frames", "6"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == 6 and summary["refused"] == 1 and "non-finite" in summary["refused_last"]
    assert "frame 2: AI output refused" in captured.err
    rows = _csv_rows(table)
    assert "non-finite" in rows[2]["refused"] and rows[2]["bone_area"] == "" and rows[2]["inference_ms"] == ""
    assert (rows[2]["overlay_shown"], rows[2]["gate_score"], rows[2]["ai_unsure"]) == ("0", "", "0")  # no result
    assert all(r["refused"] == "" and r["bone_area"] != "" for i, r in enumerate(rows) if i != 2)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6


# -- outputs checked before any work; a failing disk (issue 19, defect 9) ---------------------------
@pytest.mark.parametrize("out, problem", [
    ("folder", "is a folder; name a file in it"),
    ("x.png", "'.png' is not a video file name"),
    ("noext", "no extension"),
    ("SOURCE", "is the input"),
    ("ro/x.mp4", "cannot write in"),
])
def test_render_refuses_bad_outputs_before_any_work(small_video, tmp_path, capsys, monkeypatch, out, problem):
    import shutil

    from tests.models.core.test_outputs import read_only

    source = shutil.copy(small_video, tmp_path / "case.mp4")
    (tmp_path / "folder").mkdir()
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    before = source.read_bytes()
    out = source if out == "SOURCE" else tmp_path / out
    try:  # no model there: the output is refused before anything loads
        assert main(["render", str(source), "--out", str(out), "--model", str(tmp_path / "no-model")]) == 1
    finally:
        (tmp_path / "ro").chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"endospine: error: --out {out}: ") and problem in err[0], err
    assert source.read_bytes() == before
    assert main(["render", str(source), "--out", str(tmp_path / "o.mp4"), "--frames-csv", str(tmp_path / "f.json"),
                 "--model", str(tmp_path / "no-model")]) == 1
    assert "--frames-csv" in capsys.readouterr().err


def test_render_on_a_full_disk_stops_with_one_line_and_no_partial(small_video, tiny_model_dir, tmp_path, capsys,
                                                                 monkeypatch):
    import errno

    import app.render as render
    from models.core.deid import DeidPolicy
    from tests.models.core.test_video import _FailingDisk

    real_writer = DeidPolicy.video_writer  # render writes through the policy, as the recorder

    def full_disk_writer(self, *args, **kwargs):
        writer = real_writer(self, *args, **kwargs)
        writer._container = _FailingDisk(writer._container, 0, errno.ENOSPC)
        return writer

    monkeypatch.setattr(DeidPolicy, "video_writer", full_disk_writer)
    segmented = []
    real = render.segment_frame
    monkeypatch.setattr(render, "segment_frame", lambda *a: segmented.append(1) or real(*a))
    out = tmp_path / "out" / "o.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--frames-csv", str(tmp_path / "f.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"endospine: error: {out}: cannot write video (disk full)", err
    assert not out.exists() and not list(out.parent.iterdir()) and not (tmp_path / "f.csv").exists()
    assert len(segmented) < 30  # stopped when the disk failed, not at the end of the source


# -- a source whose frames change size mid-stream (issue 19, defect 12) ------------------------------
def test_render_scales_frames_of_another_size_never_crops(pattern_video, tiny_model_dir, tmp_path, capsys,
                                                           monkeypatch):
    """64x48, then 96x64 (a capture that switched resolution), then 64x48 again: the video keeps
    the first size, the larger frames are scaled to fit (aspect kept), counted and warned about."""
    import app.render as render
    from models.core.sources.video import VideoSource
    from tests.models.core.sources.test_file_faults import _remux

    small = _remux(pattern_video(width=64, height=48, frames=10), tmp_path / "a.h264", "h264")
    large = _remux(pattern_video(width=96, height=64, frames=10), tmp_path / "b.h264", "h264")
    both = tmp_path / "both.h264"
    both.write_bytes(small.read_bytes() + large.read_bytes() + small.read_bytes())
    monkeypatch.setattr(render, "composite", lambda frame, rgba, box=None: frame)  # the picture as decoded
    out = tmp_path / "o.mp4"
    assert main(["render", str(both), "--out", str(out), "--model", str(tiny_model_dir),
                 "--keep-full-frame"]) == 0  # a test pattern, no endoscope circle: the whole frame, to compare
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == 30 and summary["resized"] == 10
    assert "frame 10 is 96x64, the video 64x48" in captured.err and "scaled to fit" in captured.err
    source = VideoSource(both, realtime=False)
    with source:
        decoded = [source.read().image for _ in range(30)]
    with av.open(str(out)) as c:
        written = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(written) == 30 and all(w.shape == (48, 64, 3) for w in written)
    for i in (0, 15, 25):
        expected = decoded[i] if decoded[i].shape == (48, 64, 3) else render.fit(decoded[i], 64, 48)
        assert np.abs(written[i].astype(int) - expected).mean() < 6, i  # codec noise only
    cropped = decoded[15][:48, :64]
    assert np.abs(written[15].astype(int) - cropped).mean() > 20  # not the top-left corner of the frame


def test_render_segments_the_view_live_sees_and_writes_every_pixel(small_video, tiny_model_dir, tmp_path,
                                                                   monkeypatch):
    """A source larger than --view-size: the model gets the reduced view (as `run` would show and
    segment it), the written video the source's own resolution with the mask mapped onto it."""
    import app.render as render

    seen, boxes = [], []
    original_segment, original_composite = render.segment_frame, render.composite

    def segment(runtime, stage, image, frame_id=None):
        seen.append(image.shape)
        return original_segment(runtime, stage, image, frame_id)

    def composite(frame, rgba, box=None):
        boxes.append((frame.shape, box))
        return original_composite(frame, rgba, box)

    monkeypatch.setattr(render, "segment_frame", segment)
    monkeypatch.setattr(render, "composite", composite)
    out = tmp_path / "o.mp4"
    summary = render.render_video(str(small_video), out, tiny_model_dir, max_frames=6, progress=False,
                                  view_max=(80, 80))
    assert summary["frames"] == 6 and seen == [(60, 80, 3)] * 6
    for shape, (x, y, w, h) in boxes:  # the crop box of the 80x60 view, doubled onto the 160x120 frame
        assert shape == (120, 160, 3) and x + w <= 160 and y + h <= 120 and w > 60
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (160, 120)
