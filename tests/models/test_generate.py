"""`endospine-model synth` and `sheet`: datasets and videos from the scene engine."""
from __future__ import annotations

import av
import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.imageio import read_image, read_label
from models.dataset import load_dataset
from models.synth import SyntheticClip


def test_dataset_is_complete_split_by_clip_and_worker_independent(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["synth", "--out", str(a), "--clips", "4", "--frames", "2", "--size", "96", "--seed", "7",
                 "--workers", "1"]) == 0
    assert main(["synth", "--out", str(b), "--clips", "4", "--frames", "2", "--size", "96", "--seed", "7",
                 "--workers", "2"]) == 0
    ds = load_dataset(a)
    assert len(ds.items) == 8 and ds.summary()["sources"] == {"synthetic": 8}
    clips = [{it.clip for it in ds.splits[s]} for s in ("train", "val", "test")]
    assert all(clips) and not (clips[0] & clips[1] or clips[0] & clips[2] or clips[1] & clips[2])
    assert ds.meta["generator"]["seed"] == 7
    for item in ds.items:
        img, lab = read_image(ds.path(item.image)), read_label(ds.path(item.label))
        assert img.shape == (96, 96, 3) and lab.shape == (96, 96)
        assert set(np.unique(lab)) <= {0, 1, 2, 3, 4, 5, 6, 255}
        # same pixels whatever the number of workers
        assert (a / item.image).read_bytes() == (b / item.image).read_bytes()
        assert (a / item.label).read_bytes() == (b / item.label).read_bytes()
    # the label file is the engine's label, exactly
    first = ds.items[0]
    _, engine_labels = SyntheticClip(7, int(first.clip[1:]), 96, 96).render(first.frame)
    assert np.array_equal(read_label(ds.path(first.label)), engine_labels)


def test_video_with_labels(tmp_path):
    video, labels = tmp_path / "v.mp4", tmp_path / "labels"
    assert main(["synth", "--out", str(labels), "--video", str(video), "--resolution", "192x108", "--fps", "30",
                 "--frames", "12", "--seed", "2", "--workers", "1"]) == 0
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (108, 192, 3)
    meta = yaml.safe_load((labels / "video.yaml").read_text())
    assert meta["frames"] == 12 and meta["resolution"] == [192, 108]
    lab = read_label(labels / "labels" / "000005.png")
    assert lab.shape == (108, 192)
    outside = lab == 255
    assert outside.any() and frames[5][outside].mean() < 25  # black surround (after H.264)


def test_sheet(tmp_path):
    data = tmp_path / "d"
    assert main(["synth", "--out", str(data), "--clips", "2", "--frames", "2", "--size", "96", "--workers", "1"]) == 0
    assert main(["sheet", str(data), "--out", str(tmp_path / "s.png"), "--n", "3"]) == 0
    sheet = read_image(tmp_path / "s.png")
    assert sheet.shape[0] > 256 and sheet.shape[1] > 3 * 256


@pytest.mark.parametrize("argv, problem", [
    (["--clips", "0"], "positive"),
    (["--size", "abc"], "whole number"),
    (["--ratios", "1,2"], "--ratios"),
    (["--video", "x.mp4", "--resolution", "big"], "--resolution"),
    (["--video", "x.mp4", "--resolution", "191x108"], "even"),
    (["--size", "20"], ""),
])
def test_bad_arguments(tmp_path, capsys, argv, problem):
    argv = ["synth", "--out", str(tmp_path / "o"), "--workers", "1", "--frames", "1", *argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse type errors exit 2 with a usage line
        code = exc.code
    assert code != 0
    err = capsys.readouterr().err
    assert problem in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_existing_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    assert main(["synth", "--out", str(out), "--clips", "1", "--frames", "1", "--size", "96", "--workers", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep"
