from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, write_label
from models.datatools.extract import ExtractSettings, clip_id, extract_frames
from tests.models.datatools.conftest import LUMBAR, quality_frames

STRICT = ExtractSettings(every=1, min_sharpness=50)
FULL = DeidPolicy(keep_full_frame=True)  # pattern videos have no field of view: keep them whole


def test_keeps_good_frames_and_drops_each_kind_of_bad_one(quality_video, tmp_path):
    out = tmp_path / "frames"
    (summary,) = extract_frames([quality_video], out, STRICT, LUMBAR)
    _, expect = quality_frames()
    assert summary.clip == "case-01"            # "case 01.mp4": made file-name safe
    assert (summary.decoded, summary.candidates, summary.kept) == (10, 10, len(expect["kept"]))
    assert {r: summary.dropped[r] for r in ("duplicate", "blurry", "dark", "bright")} == \
        {r: len(expect[r]) for r in ("duplicate", "blurry", "dark", "bright")}
    doc = yaml.safe_load((out / "frames.yaml").read_text())
    assert doc["format"] == "endospine-frames/1" and doc["classes"]["name"] == "test-lumbar"
    assert [f["frame"] for f in doc["frames"]] == expect["kept"]
    assert {f["clip"] for f in doc["frames"]} == {"case-01"}
    assert doc["frames"][1]["image"] == "images/case-01_000004.png"
    assert doc["frames"][1]["pts"] == pytest.approx(0.4)
    assert doc["clips"][0]["dropped"]["dark"] == 1
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"case-01_{i:06d}.png" for i in expect["kept"]]
    assert read_image(out / "images" / "case-01_000000.png").shape == (144, 192, 3)
    assert not (out / "dataset.yaml").exists()     # unlabeled frames are not a dataset


def test_every_and_max_per_clip_spread_in_time(pattern_video, tmp_path):
    video = pattern_video(width=64, height=48, frames=20)
    settings = ExtractSettings(every=2, max_per_clip=4, min_sharpness=0, dup_threshold=0, max_dark=1, max_bright=1)
    (summary,) = extract_frames([video], tmp_path / "f", settings, LUMBAR, FULL)
    assert (summary.candidates, summary.kept, summary.dropped["over_limit"]) == (10, 4, 6)
    frames = [f["frame"] for f in yaml.safe_load((tmp_path / "f" / "frames.yaml").read_text())["frames"]]
    assert frames == [0, 6, 12, 18]
    assert len(list((tmp_path / "f" / "images").iterdir())) == 4


def test_jpg_format(pattern_video, tmp_path):
    settings = ExtractSettings(every=10, min_sharpness=0, max_dark=1, image_format="jpg")
    extract_frames([pattern_video()], tmp_path / "f", settings, LUMBAR, FULL)
    assert all(p.suffix == ".jpg" for p in (tmp_path / "f" / "images").iterdir())


@pytest.mark.unit
def test_clip_ids_are_file_name_safe(tmp_path):
    assert clip_id(tmp_path / "Case 3 (left).mp4") == "Case-3-left"
    assert clip_id(tmp_path / "op_2021-05.avi") == "op_2021-05"


def test_same_clip_id_twice_is_an_error(quality_video, tmp_path):
    other = tmp_path / "x" / quality_video.name
    other.parent.mkdir()
    shutil.copy(quality_video, other)
    with pytest.raises(EndoSpineError, match="same clip id 'case-01'"):
        extract_frames([quality_video, other], tmp_path / "out", STRICT, LUMBAR)
    assert not (tmp_path / "out").exists()


def test_a_broken_video_leaves_no_output(quality_video, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(EndoSpineError, match="broken.mp4: cannot open as a video"):
        extract_frames([quality_video, bad], tmp_path / "out", STRICT, LUMBAR)
    assert list(tmp_path.iterdir()) == [bad]   # no output, no temporary folder


@pytest.mark.unit
@pytest.mark.parametrize("kwargs, message", [({"every": 0}, "--every"), ({"dup_threshold": 2}, "--dup-threshold"),
                                             ({"image_format": "gif"}, "--format")])
def test_bad_settings(kwargs, message):
    with pytest.raises(EndoSpineError, match=message):
        ExtractSettings(**kwargs)


def test_cli_extract_then_label_then_import_keeps_clips(quality_video, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["extract", str(quality_video), "--out", str(out), "--every", "1", "--min-sharpness", "50"]) == 0
    printed = capsys.readouterr().out
    assert "case-01" in printed and "wrote 4 frames" in printed
    # "labeling": a mask folder beside the extracted images, then import with the clip pattern
    src = tmp_path / "labeled"
    shutil.copytree(out / "images", src / "images")
    for p in (src / "images").iterdir():
        write_label(src / "masks" / p.name, np.zeros(read_image(p).shape[:2], np.uint8))
    ds = tmp_path / "ds"
    assert main(["import", "masks", str(src), "--out", str(ds), "--clip-from", r"^(.+)_(\d+)$"]) == 0
    items = yaml.safe_load((ds / "dataset.yaml").read_text())["items"]
    assert {(it["clip"], it["frame"]) for it in items} == {("case-01", f) for f in (0, 4, 7, 9)}


# -- de-identified by default (issue 21) -------------------------------------------------------------
def test_extracted_frames_keep_only_the_field_of_view(tmp_path, capsys):
    from models.core.deid import DEFAULT_MARGIN_PX, disallowed_image, image_metadata
    from models.core.optics.fov import Circle
    from tests.towerframes import Tower, max_beyond

    tower = Tower(seed=2)
    video = tower.video(tmp_path / "case.mp4", frames=12, tags={"title": "DOE^JOHN"})
    out = tmp_path / "frames"
    assert main(["extract", str(video), "--out", str(out), "--every", "3", "--min-sharpness", "0",
                 "--dup-threshold", "0", "--max-dark", "1", "--max-bright", "1"]) == 0
    assert "frames: field of view only" in capsys.readouterr().out
    doc = yaml.safe_load((out / "frames.yaml").read_text())
    assert doc["deid"]["frames"] == "field-of-view" and doc["deid"]["margin_px"] == DEFAULT_MARGIN_PX
    fov = doc["clips"][0]["fov"]
    assert fov["source"] == "detected" and abs(fov["r"] - tower.circle.r) < 0.5
    assert 0.5 < doc["clips"][0]["black_share"] < 0.9
    images = sorted((out / "images").iterdir())
    assert len(images) == 4
    circle = Circle(fov["cx"], fov["cy"], fov["r"] + fov["spread_px"])
    for p in images:
        assert max_beyond(read_image(p), circle, DEFAULT_MARGIN_PX) == 0  # every one, every outside pixel
        assert disallowed_image(image_metadata(p.read_bytes())) == []


def test_extract_refuses_a_plain_camera_unless_told(pattern_video, tmp_path, capsys):
    from models.core.deid import image_metadata

    video = pattern_video(width=64, height=48, frames=10)
    loose = ["--every", "5", "--min-sharpness", "0", "--dup-threshold", "0", "--max-dark", "1", "--max-bright", "1"]
    assert main(["extract", str(video), "--out", str(tmp_path / "a"), *loose]) == 1
    assert "no field of view" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["extract", str(video), "--out", str(tmp_path / "b"), "--region", "32,24,16", *loose]) == 0
    img = read_image(next((tmp_path / "b" / "images").iterdir()))
    assert not img[0, 0].any() and img[24, 32].any()
    assert main(["extract", str(video), "--out", str(tmp_path / "c"), "--keep-full-frame", *loose]) == 0
    assert "FULL FRAME" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "c" / "frames.yaml").read_text())["deid"]["frames"] == "full-frame"
    first = next((tmp_path / "c" / "images").iterdir())
    assert image_metadata(first.read_bytes())["tEXt:frames"] == "full-frame"
