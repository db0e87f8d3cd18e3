"""Each importer on tiny sources written at test time, and the errors each must give."""
from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import encode_image, read_label, write_image, write_label
from models.dataset import load_dataset
from models.datatools.importers import ImportOptions, import_dataset
from models.datatools.masks import load_label_map
from tests.models.datatools.conftest import LUMBAR, picture, stripes


def run(kind: str, src: Path, out: Path, classes: ClassTable = LUMBAR, map_file: Path | None = None, **kw):
    opts = ImportOptions(classes=classes, label_map=load_label_map(map_file, classes), workers=2, **kw)
    return import_dataset(kind, src, out, opts)


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(rgb, ".jpg", 90))


# -- paddleseg -------------------------------------------------------------------------------
def paddleseg_source(root: Path) -> Path:
    for n in range(4):
        write_image(root / "JPEGImages" / f"clipA_{n}.png" if n < 2 else root / "JPEGImages" / f"clipB_{n}.png", picture(n))
        write_label(root / "Annotations" / f"{'clipA' if n < 2 else 'clipB'}_{n}.png", stripes())
    (root / "train.txt").write_text("JPEGImages/clipA_0.png Annotations/clipA_0.png\n"
                                    "JPEGImages/clipA_1.png Annotations/clipA_1.png\n\n")
    (root / "val.txt").write_text("JPEGImages/clipB_2.png Annotations/clipB_2.png\n"
                                  "JPEGImages/clipB_3.png Annotations/clipB_3.png\n")
    return root


def test_paddleseg_keeps_splits_and_labels(tmp_path):
    src = paddleseg_source(tmp_path / "src")
    report = run("paddleseg", src, tmp_path / "ds", clip_from=r"^(clip\w)_(\d+)$")
    ds = load_dataset(tmp_path / "ds")
    assert report.images == 4 and report.clips == 2
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 2, "val": 2, "test": 0}
    assert [it.image for it in ds.splits["val"]] == ["images/clipB_2.png", "images/clipB_3.png"]
    assert {(it.clip, it.frame) for it in ds.items} == {("clipA", 0), ("clipA", 1), ("clipB", 2), ("clipB", 3)}
    assert all(it.source == "real" for it in ds.items)
    assert (read_label(tmp_path / "ds" / "labels" / "clipA_0.png") == stripes()).all()
    assert (tmp_path / "ds" / "images" / "clipA_0.png").read_bytes() == (src / "JPEGImages" / "clipA_0.png").read_bytes()
    assert list(report.images_with[:4]) == [4, 4, 4, 4]
    assert yaml.safe_load((tmp_path / "ds" / "dataset.yaml").read_text())["imported"]["format"] == "paddleseg"


def test_paddleseg_single_list_file_takes_split_from_its_name(tmp_path):
    src = paddleseg_source(tmp_path / "src")
    run("paddleseg", src / "val.txt", tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert len(ds.items) == 2 and len(ds.splits["val"]) == 2


def test_paddleseg_clip_in_two_source_splits_is_an_error(tmp_path):
    src = paddleseg_source(tmp_path / "src")
    with pytest.raises(EndoSpineError, match=r"clip 'clip' is in the source's train split .* and its val split"):
        run("paddleseg", src, tmp_path / "ds", clip_from=r"^([a-z]+)")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("line, message", [
    ("JPEGImages/clipA_0.png", r"train.txt:1: expected 'image_path label_path'"),
    ("JPEGImages/nope.png Annotations/clipA_0.png", r"nope.png: file not found"),
    ("JPEGImages/clipA_0.png Annotations/clipA_0.png\nJPEGImages/clipA_0.png Annotations/clipA_1.png",
     r"train.txt:2: JPEGImages/clipA_0.png is listed twice"),
])
def test_paddleseg_bad_lists(tmp_path, line, message):
    src = paddleseg_source(tmp_path / "src")
    (src / "train.txt").write_text(line + "\n")
    with pytest.raises(EndoSpineError, match=message):
        run("paddleseg", src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_paddleseg_label_size_and_ids_are_checked(tmp_path):
    src = paddleseg_source(tmp_path / "src")
    write_label(src / "Annotations" / "clipA_1.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(EndoSpineError, match=r"clipA_1.png: label is 10x10 but image clipA_1.png is 32x24"):
        run("paddleseg", src, tmp_path / "ds")
    write_label(src / "Annotations" / "clipA_1.png", np.full((24, 32), 7, np.uint8))
    with pytest.raises(EndoSpineError, match=r"clipA_1.png: label values \[7\] are not class ids"):
        run("paddleseg", src, tmp_path / "ds")


def palette_png(ids: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette PNG (PaddleSeg's pseudo-color labels), written by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    h, w = ids.shape
    rows = b"".join(b"\x00" + row.tobytes() for row in ids.astype(np.uint8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette.astype(np.uint8).tobytes()) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("entries", [4, 256])
def test_paddleseg_palette_labels_read_as_indices(tmp_path, entries):
    src = paddleseg_source(tmp_path / "src")
    rng = np.random.default_rng(0)
    palette = np.unique(rng.integers(0, 256, (600, 3)), axis=0)[:entries]      # distinct colors
    (src / "Annotations" / "clipA_0.png").write_bytes(palette_png(stripes(), palette))
    run("paddleseg", src, tmp_path / "ds")
    assert (read_label(tmp_path / "ds" / "labels" / "clipA_0.png") == stripes()).all()


# -- masks -----------------------------------------------------------------------------------
def test_masks_folder_with_jpeg_binary_masks(tmp_path, polyp_classes):
    src = tmp_path / "src"
    truth = {}
    for n in range(3):
        write_jpeg(src / "images" / f"p{n}.jpg", picture(n, 48, 64))
        mask = np.zeros((48, 64), np.uint8)
        cv2.circle(mask, (20 + 10 * n, 24), 12, 255, -1)
        truth[n] = mask > 127
        write_jpeg(src / "masks" / f"p{n}.jpg", np.repeat(mask[..., None], 3, axis=2))  # 3-channel JPEG, like Kvasir
    report = run("masks", src, tmp_path / "ds", classes=ClassTable.load(polyp_classes))
    assert report.images == 3 and report.clips == 3 and not report.splits
    assert any("run 'endospine-model split'" in n for n in report.notes)
    for n in range(3):
        label = read_label(tmp_path / "ds" / "labels" / f"p{n}.png")
        assert set(np.unique(label)) == {0, 1}
        assert np.mean((label == 1) == truth[n]) > 0.99     # JPEG ringing aside, the threshold recovers it


def test_binary_masks_with_a_multi_class_table_need_a_map(tmp_path):
    src = tmp_path / "src"
    write_jpeg(src / "images" / "a.jpg", picture(0))
    write_jpeg(src / "masks" / "a.jpg", np.where(stripes()[..., None] > 1, 255, 0).repeat(3, axis=2).astype(np.uint8))
    with pytest.raises(EndoSpineError, match=r"a.jpg: a binary mask, but class table 'test-lumbar' has 4 classes"):
        run("masks", src, tmp_path / "ds")
    map_file = tmp_path / "map.yaml"
    map_file.write_text("1: disc\n")
    run("masks", src, tmp_path / "ds", map_file=map_file)
    assert set(np.unique(read_label(tmp_path / "ds" / "labels" / "a.png"))) == {0, 3}


def test_masks_binary_png_needs_threshold(tmp_path, polyp_classes):
    src = tmp_path / "src"
    write_image(src / "images" / "a.png", picture(0))
    write_label(src / "masks" / "a.png", np.where(stripes() > 1, 255, 0).astype(np.uint8))
    classes = ClassTable.load(polyp_classes)
    with pytest.raises(EndoSpineError, match="only background .0. and ignore .255.*--threshold"):
        run("masks", src, tmp_path / "ds", classes=classes)
    run("masks", src, tmp_path / "ds", classes=classes, threshold=128)
    assert (read_label(tmp_path / "ds" / "labels" / "a.png") == (stripes() > 1)).all()


def test_masks_color_masks_through_map(tmp_path):
    src = tmp_path / "src"
    palette = {0: (0, 0, 0), 1: (250, 50, 83), 2: (51, 221, 255), 3: (255, 204, 51)}
    color = np.zeros((24, 32, 3), np.uint8)
    for cid, rgb in palette.items():
        color[stripes() == cid] = rgb
    write_image(src / "images" / "a.png", picture(0))
    write_image(src / "masks" / "a.png", color)
    map_file = tmp_path / "map.yaml"
    map_file.write_text('"0,0,0": background\n"250,50,83": bone\n"#33ddff": ligament\n"255,204,51": disc\n')
    run("masks", src, tmp_path / "ds", map_file=map_file)
    assert (read_label(tmp_path / "ds" / "labels" / "a.png") == stripes()).all()
    color[0, 0] = (1, 2, 3)
    write_image(src / "masks" / "a.png", color)
    with pytest.raises(EndoSpineError, match=r"a.png: 1 unknown mask color\(s\): \(1,2,3\) x1"):
        run("masks", src, tmp_path / "ds2", map_file=map_file)


def test_masks_id_values_remapped(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "a.png", picture(0))
    write_label(src / "masks" / "a.png", (stripes() * 10).astype(np.uint8))      # values 0,10,20,30
    map_file = tmp_path / "map.yaml"
    map_file.write_text("10: bone\n20: ligament\n30: ignore\n")
    run("masks", src, tmp_path / "ds", map_file=map_file)
    expected = np.where(stripes() == 3, 255, stripes())
    assert (read_label(tmp_path / "ds" / "labels" / "a.png") == expected).all()


def test_masks_unmatched_files_are_named(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "a.png", picture(0))
    write_image(src / "images" / "b.png", picture(1))
    write_label(src / "masks" / "a.png", stripes())
    with pytest.raises(EndoSpineError, match=r"images/b.png: no file with the same name in masks/"):
        run("masks", src, tmp_path / "ds")


# -- labelme ---------------------------------------------------------------------------------
def labelme_doc(image_path: str, shapes: list[dict], h: int = 40, w: int = 60, data: bytes | None = None) -> dict:
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": base64.b64encode(data).decode() if data else None, "imageHeight": h, "imageWidth": w}


def shape(label: str, points, kind: str = "polygon") -> dict:
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


def test_labelme_polygons_painted_in_file_order(tmp_path):
    src = tmp_path / "src"
    write_image(src / "case1" / "f001.png", picture(0, 40, 60))
    shapes = [shape("bone", [[0, 0], [30, 0], [30, 39], [0, 39]]),            # left half
              shape("disc", [[20, 10], [40, 10], [40, 30], [20, 30]]),
              shape("ligament", [[50, 5], [55, 15]], "rectangle"),
              shape("Flavum", [[10, 20], [13, 20]], "circle")]
    (src / "case1" / "f001.json").write_text(json.dumps(labelme_doc("f001.png", shapes)))
    # a second file with the image embedded (imageData) and no image file beside it
    data = encode_image(picture(1, 40, 60), ".png")
    (src / "case1" / "f002.json").write_text(json.dumps(labelme_doc("missing.png", [shape("bone", [[1, 1], [5, 1], [5, 5]])], data=data)))
    map_file = tmp_path / "map.yaml"
    map_file.write_text("Flavum: ligament\n")
    report = run("labelme", src, tmp_path / "ds", map_file=map_file, clip_from=r"^([^/]+)/")
    assert report.images == 2 and report.clips == 1
    lab = read_label(tmp_path / "ds" / "labels" / "case1" / "f001.png")
    assert lab[5, 5] == 1 and lab[5, 45] == 0
    assert lab[20, 25] == 3 and lab[20, 35] == 3        # the disc covers the bone drawn before it
    assert lab[10, 52] == 2 and lab[20, 10] == 2        # rectangle, circle (mapped name)
    assert (tmp_path / "ds" / "images" / "case1" / "f002.png").read_bytes() == data


@pytest.mark.parametrize("shapes, message", [
    ([shape("vessel", [[0, 0], [5, 0], [5, 5]])], r"f.json: unknown label 'vessel'.*--map"),
    ([shape("bone", [[0, 0], [5, 5]], "line")], r"f.json: shape #1 \('bone', line\): shape type 'line' has no area"),
    ([shape("bone", [[0, 0], [5, 5]])], r"a polygon needs at least 3 points"),
    ([shape("bone", "nonsense")], r"points are not \[x, y\] pairs"),
])
def test_labelme_errors(tmp_path, shapes, message):
    src = tmp_path / "src"
    write_image(src / "f.png", picture(0, 40, 60))
    (src / "f.json").write_text(json.dumps(labelme_doc("f.png", shapes)))
    with pytest.raises(EndoSpineError, match=message):
        run("labelme", src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_labelme_size_mismatch_and_bad_json(tmp_path):
    src = tmp_path / "src"
    write_image(src / "f.png", picture(0, 40, 60))
    (src / "f.json").write_text(json.dumps(labelme_doc("f.png", [], h=50, w=60)))
    with pytest.raises(EndoSpineError, match=r"f.json: imageWidth x imageHeight is 60x50 but the image is 60x40"):
        run("labelme", src, tmp_path / "ds")
    (src / "f.json").write_text("{not json")
    with pytest.raises(EndoSpineError, match=r"f.json: not valid JSON"):
        run("labelme", src, tmp_path / "ds")


# -- cvat ------------------------------------------------------------------------------------
CVAT_COLORS = {"background": (0, 0, 0), "bone": (250, 50, 83), "ligament": (51, 221, 255), "disc": (255, 204, 51)}


def cvat_export(root: Path, labelmap: dict = CVAT_COLORS) -> Path:
    lines = ["# label:color_rgb:parts:actions"] + [f"{n}:{','.join(map(str, c))}::" for n, c in labelmap.items()]
    root.mkdir(parents=True)
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    color = np.zeros((24, 32, 3), np.uint8)
    for cid, name in enumerate(("background", "bone", "ligament", "disc")):
        color[stripes() == cid] = CVAT_COLORS[name]
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for n, subset in enumerate(("train", "train", "val", "default")):
        write_image(root / "JPEGImages" / f"frame_{n:06d}.jpg", picture(n))
        write_image(root / "SegmentationClass" / f"frame_{n:06d}.png", color)
        with open(sets / f"{subset}.txt", "a") as f:
            f.write(f"frame_{n:06d}\n")
    return root


def test_cvat_colors_to_ids_and_subsets_to_splits(tmp_path):
    src = cvat_export(tmp_path / "src")
    report = run("cvat", src, tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert report.images == 4
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 2, "val": 1, "test": 0}
    assert any("default" in n for n in report.notes)
    assert (read_label(tmp_path / "ds" / "labels" / "frame_000003.png") == stripes()).all()


def test_cvat_unknown_label_and_unknown_color(tmp_path):
    src = cvat_export(tmp_path / "src", {**CVAT_COLORS, "instrument": (1, 1, 1)})
    with pytest.raises(EndoSpineError, match=r"labelmap.txt:6: unknown label 'instrument'"):
        run("cvat", src, tmp_path / "ds")
    map_file = tmp_path / "map.yaml"
    map_file.write_text("instrument: ignore\n")
    run("cvat", src, tmp_path / "ds", map_file=map_file)          # mapped: fine
    src2 = cvat_export(tmp_path / "src2", {k: v for k, v in CVAT_COLORS.items() if k != "disc"})
    with pytest.raises(EndoSpineError, match=r"frame_\d+.png: 1 unknown mask color\(s\): \(255,204,51\)"):
        run("cvat", src2, tmp_path / "ds2")


def test_cvat_needs_images(tmp_path):
    src = cvat_export(tmp_path / "src")
    for p in (src / "JPEGImages").iterdir():
        p.unlink()
    (src / "JPEGImages").rmdir()
    with pytest.raises(EndoSpineError, match="Save images"):
        run("cvat", src, tmp_path / "ds")


# -- shared rules ----------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("pattern, message", [("(", "not a valid regular expression"), ("abc", "needs a group")])
def test_bad_clip_pattern(tmp_path, pattern, message):
    with pytest.raises(EndoSpineError, match=message):
        run("masks", tmp_path, tmp_path / "ds", clip_from=pattern)


def test_clip_pattern_must_match_every_image(tmp_path):
    src = paddleseg_source(tmp_path / "src")
    with pytest.raises(EndoSpineError, match=r"clipB_2.png: --clip-from '\^\(clipA\)_' does not match 'clipB_2'"):
        run("paddleseg", src, tmp_path / "ds", clip_from=r"^(clipA)_")


@pytest.mark.unit
@pytest.mark.parametrize("text, message", [("bone: nerve\n", "'nerve' is not a class"), ("- a\n", "expected a YAML mapping"),
                                           ("300: bone\n", "outside 0..255"), ("bone: 9\n", "class id 9 is not in")])
def test_bad_map_files(tmp_path, text, message):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(EndoSpineError, match=message):
        load_label_map(path, LUMBAR)
