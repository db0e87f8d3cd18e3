"""validate finds each kind of problem, names the file, and fixes nothing."""
from __future__ import annotations

import json
import shutil

import numpy as np
import yaml

from models.cli import main
from models.core.imageio import write_image, write_label
from models.datatools.validate import validate_dataset
from tests.models.datatools.conftest import picture


def edit_meta(root, fn):
    path = root / "dataset.yaml"
    meta = yaml.safe_load(path.read_text())
    fn(meta)
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def problems(root) -> dict[str, str]:
    report = validate_dataset(root, workers=2)
    return {p.file: p.message for p in report.problems}


def test_a_good_dataset_passes_with_counts(dataset):
    report = validate_dataset(dataset, workers=2)
    assert report.ok and report.problems == [] and report.warnings == []
    assert (report.images, report.clips) == (12, 4)
    assert report.splits == {"train": (6, 2), "val": (3, 1), "test": (3, 1)}
    assert list(report.pixels[:4]) == [12 * 24 * 8] * 4 and list(report.images_with[:4]) == [12] * 4
    assert "OK: no problems" in report.to_text()


def test_size_mismatch(dataset):
    write_label(dataset / "labels/c1_2.png", np.zeros((10, 12), np.uint8))
    assert problems(dataset) == {"labels/c1_2.png": "label is 12x10 but its image images/c1_2.png is 32x24"}


def test_unknown_class_id(dataset):
    write_label(dataset / "labels/c0_0.png", np.full((24, 32), 9, np.uint8))
    (msg,) = problems(dataset).values()
    assert "values [9] are not class ids" in msg and list(problems(dataset)) == ["labels/c0_0.png"]


def test_missing_and_unreadable_files(dataset):
    (dataset / "images/c2_0.png").unlink()
    (dataset / "labels/c3_1.png").write_bytes(b"not a png")
    assert problems(dataset) == {"images/c2_0.png": "file not found",
                                 "labels/c3_1.png": "not a readable label image: unknown format (reads PNG, JPEG, "
                                                    "TIFF, BMP, WebP, PBM/PGM/PPM/PAM, GIF, Sun raster)"}


def test_clip_in_two_splits(dataset):
    train = (dataset / "train.txt").read_text().splitlines()
    moved = train.pop(1)                                   # a frame of clip c0 moves to val
    (dataset / "train.txt").write_text("\n".join(train) + "\n")
    with open(dataset / "val.txt", "a") as f:
        f.write(moved + "\n")
    assert problems(dataset) == {"val.txt": "clip 'c0' is in train (images/c0_0.png) and in val (images/c0_1.png): "
                                            "frames of one clip must stay in one split"}


def test_split_lists_must_reference_items_once(dataset):
    with open(dataset / "test.txt", "a") as f:
        f.write("images/zz.png labels/zz.png\nimages/c3_0.png labels/c3_0.png\nonly_one_path\n")
    found = problems(dataset)
    assert found == {"test.txt:4": "images/zz.png is not in dataset.yaml",
                     "test.txt:5": "images/c3_0.png is listed twice (also test.txt:1)",
                     "test.txt:6": "expected 'image_path label_path', got 'only_one_path'"}


def test_duplicate_items_and_identical_images(dataset):
    edit_meta(dataset, lambda m: m["items"].append(dict(m["items"][0])))
    shutil.copy(dataset / "images/c0_0.png", dataset / "images/c0_1.png")
    found = problems(dataset)
    assert found["images/c0_0.png"] == "listed twice in dataset.yaml"
    assert found["images/c0_1.png"] == "same bytes as images/c0_0.png (a duplicate image)"


def test_bad_record_and_jpeg_label(dataset):
    def change(meta):
        meta["items"][0]["source"] = "invented"
        meta["items"][1]["label"] = "labels/c0_1.jpg"
    edit_meta(dataset, change)
    write_image(dataset / "labels/c0_1.jpg", np.zeros((24, 32, 3), np.uint8))
    found = problems(dataset)
    assert "item #1: bad record" in found["dataset.yaml"]
    assert found["labels/c0_1.jpg"] == "label is not a PNG (lossy formats change class ids)"
    assert "images/c0_1.png has label labels/c0_1.jpg in dataset.yaml" in found["train.txt:2"]


def test_paths_must_stay_inside_and_have_no_spaces(dataset):
    def change(meta):
        meta["items"][0]["image"] = "../elsewhere.png"
        meta["items"][1]["image"] = "images/with space.png"
    edit_meta(dataset, change)
    found = {(p.file, p.message) for p in validate_dataset(dataset).problems}
    # refused when the record is read (models.dataset.Item), so no tool ever opens it
    assert any("'../elsewhere.png' must be a path inside the dataset folder" in m for _, m in found), found
    assert ("images/with space.png", "path contains whitespace (split list lines split on it)") in found


def test_warnings_do_not_fail(dataset):
    (dataset / "test.txt").write_text("")
    write_image(dataset / "images/stray.png", picture(0))
    report = validate_dataset(dataset)
    assert report.ok
    text = "\n".join(report.warnings)
    assert "test.txt is empty" in text and "3 images are in no split list" in text
    assert "1 files under images/ or labels/ are not in dataset.yaml (e.g. images/stray.png)" in text


def test_cli_exit_codes_and_reports(dataset, tmp_path, capsys):
    assert main(["validate", str(dataset), "--report", str(tmp_path / "ok.json")]) == 0
    assert json.loads((tmp_path / "ok.json").read_text())["ok"] is True
    write_label(dataset / "labels/c1_0.png", np.full((24, 32), 200, np.uint8))
    assert main(["validate", str(dataset), "--report", str(tmp_path / "bad.yaml")]) == 1
    out = capsys.readouterr().out
    assert "labels/c1_0.png: values [200] are not class ids" in out and "FAILED: 1 problems" in out
    report = yaml.safe_load((tmp_path / "bad.yaml").read_text())
    assert report["problems"] == [{"file": "labels/c1_0.png", "problem": report["problems"][0]["problem"]}]
    assert main(["validate", str(dataset), "--report", str(tmp_path / "bad.txt")]) == 1
    assert "FAILED" in (tmp_path / "bad.txt").read_text()


def test_not_a_dataset_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dataset.yaml: missing" in err
