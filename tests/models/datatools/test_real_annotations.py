"""The importers on real annotation files from the tools' own repositories (tests/data/annotations;
sources and licences in the NOTICE.md files there): Labelme's examples (embedded imageData, polygons, an
AI-assisted 'mask' shape, '__ignore__') checked against Labelme's own label PNGs, and Datumaro's VOC
segmentation sample (the writer behind CVAT's 'Segmentation mask 1.1'); duplicates, --clip-from
and PaddleSeg list errors."""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.cli import main
from models.core.errors import EndoSpineError
from models.core.imageio import read_label, write_image, write_label
from models.dataset import load_dataset
from models.datatools.importers import ImportOptions, import_dataset
from models.datatools.labelme import label_id
from models.datatools.masks import LabelMap, MaskReader, load_label_map
from models.datatools.validate import validate_dataset
from tests.models.datatools.conftest import LUMBAR, picture, stripes

DATA = Path(__file__).resolve().parents[2] / "data" / "annotations"
LABELME = DATA / "labelme"
APC = LABELME / "tutorial" / "apc2016_obj3.json"
PRIMITIVES = LABELME / "primitives" / "primitives.json"
VOC_JSON = LABELME / "semantic_segmentation" / "data_annotated" / "2011_000003.json"
CVAT = DATA / "cvat" / "voc_dataset1"
APC_MAP = {"shelf": "bone", "highland_6539_self_stick_notes": "ligament", "mead_index_cards": "disc",
           "kong_air_dog_squeakair_tennis_ball": "ignore"}


def run(kind: str, src: Path, out: Path, mapping: dict | None = None, **kw):
    map_file = None
    if mapping:
        map_file = out.parent / f"{out.name}-map.yaml"
        map_file.write_text("".join(f"{json.dumps(k)}: {v}\n" for k, v in mapping.items()))
    opts = ImportOptions(classes=LUMBAR, label_map=load_label_map(map_file, LUMBAR), workers=1, **kw)
    return import_dataset(kind, src, out, opts)


def labelme_reference(path: Path) -> np.ndarray:
    """A label PNG written by Labelme (a palette PNG) -> its values (the palette indices)."""
    return MaskReader(LUMBAR)(path)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def polygon_area_perimeter(points) -> tuple[float, float]:
    p = np.asarray(points, np.float64)
    x, y = p[:, 0], p[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    return area, float(np.hypot(*(p - np.roll(p, 1, axis=0)).T).sum())


def copy_doc(doc: dict, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def no_partial_output(parent: Path, name: str = "ds") -> bool:
    return not (parent / name).exists() and not list(parent.glob(f".{name}.partial-*"))


# -- Labelme: examples/tutorial/apc2016_obj3.json --------------------------------------------
def test_apc2016_imports_from_its_embedded_image_and_matches_labelmes_own_label_png(tmp_path):
    """imagePath names the JSON itself; Labelme's loader uses imageData first, and so does import."""
    doc = json.loads(APC.read_text())
    assert doc["imagePath"] == "apc2016_obj3.json" and doc["imageData"]
    report = run("labelme", APC, tmp_path / "ds", APC_MAP)
    assert report.images == 1
    out = tmp_path / "ds"
    assert (out / "images" / "apc2016_obj3.jpg").read_bytes() == base64.b64decode(doc["imageData"])
    ours = read_label(out / "labels" / "apc2016_obj3.png")
    assert ours.shape == (doc["imageHeight"], doc["imageWidth"]) == (907, 1210)

    # against Labelme's own rasterization of this file (examples/tutorial/apc2016_obj3/label.png)
    ref = labelme_reference(APC.parent / "apc2016_obj3" / "label.png")
    names = (APC.parent / "apc2016_obj3" / "label_names.txt").read_text().split()
    ids = {"_background_": 0, "shelf": 1, "highland_6539_self_stick_notes": 2, "mead_index_cards": 3,
           "kong_air_dog_squeakair_tennis_ball": 255}
    for value, name in enumerate(names):
        assert iou(ref == value, ours == ids[name]) > 0.98, name

    # pixel counts against the polygons' areas: the items lie on the shelf and are drawn after it
    counts = np.bincount(ours.ravel(), minlength=256)
    shapes = {s["label"]: s["points"] for s in doc["shapes"]}
    for name in ("highland_6539_self_stick_notes", "mead_index_cards", "kong_air_dog_squeakair_tennis_ball"):
        area, perimeter = polygon_area_perimeter(shapes[name])
        assert area <= counts[ids[name]] <= area + perimeter, name     # filled, boundary pixels included
    shelf_area, shelf_perimeter = polygon_area_perimeter(shapes["shelf"])
    assert abs(counts[[1, 2, 3, 255]].sum() - shelf_area) <= shelf_perimeter
    assert validate_dataset(out, workers=1).ok


def test_image_data_is_used_before_an_image_file(tmp_path):
    doc = json.loads(APC.read_text())
    doc["imagePath"] = "apc2016_obj3.png"                    # a different image under that name
    src = tmp_path / "src"
    write_image(src / "apc2016_obj3.png", np.zeros((907, 1210, 3), np.uint8))
    copy_doc(doc, src, "apc2016_obj3.json")
    run("labelme", src, tmp_path / "ds", APC_MAP)
    assert (tmp_path / "ds" / "images" / "apc2016_obj3.jpg").read_bytes() == base64.b64decode(doc["imageData"])
    assert not (tmp_path / "ds" / "images" / "apc2016_obj3.png").exists()


def test_without_image_data_the_image_path_is_read_relative_to_the_json(tmp_path):
    doc = json.loads(APC.read_text())
    jpeg = base64.b64decode(doc["imageData"])
    doc.update(imageData=None, imagePath="..\\frames\\apc.jpg")   # Windows separators, as Labelme may save
    (tmp_path / "src" / "frames").mkdir(parents=True)
    (tmp_path / "src" / "frames" / "apc.jpg").write_bytes(jpeg)
    copy_doc(doc, tmp_path / "src" / "json", "apc2016_obj3.json")
    run("labelme", tmp_path / "src" / "json", tmp_path / "ds", APC_MAP)
    assert (tmp_path / "ds" / "images" / "apc2016_obj3.jpg").read_bytes() == jpeg


# -- Labelme: examples/primitives/primitives.json (an AI-assisted 'mask' shape) ---------------
PRIMITIVE_MAP = {"rectangle": "bone", "circle": "ligament", "polygon": "bone", "octagon": "disc",
                 "line": "bone", "point": "bone", "line_strip": "bone"}


def primitives(tmp_path: Path, edit=None) -> tuple[Path, dict]:
    """A copy of primitives.json (and its image) with the shapes that have no area removed."""
    doc = json.loads(PRIMITIVES.read_text())
    doc["shapes"] = [s for s in doc["shapes"] if s["shape_type"] not in ("line", "point", "linestrip")]
    if edit:
        edit(doc)
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRIMITIVES.with_suffix(".jpg"), src / "primitives.jpg")
    copy_doc(doc, src, "primitives.json")
    return src, doc


def decoded_mask(doc: dict) -> np.ndarray:
    shape = next(s for s in doc["shapes"] if s["shape_type"] == "mask")
    data = np.frombuffer(base64.b64decode(shape["mask"]), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) != 0


def test_the_real_primitives_file_names_the_shape_without_area(tmp_path):
    with pytest.raises(EndoSpineError, match=r"primitives.json: shape #5 \('line', line\): shape type 'line' has no "
                                             r"area \(only polygon, rectangle, circle, oriented_rectangle, mask"):
        run("labelme", PRIMITIVES, tmp_path / "ds", PRIMITIVE_MAP)
    assert no_partial_output(tmp_path)


def test_mask_shape_decodes_at_its_box(tmp_path):
    """The 'octagon' mask: a 100x100 PNG at (417.4, 305), fractional corner: placed at the rounded
    corner (417, 305) at its own size, as Labelme's shapes_to_label places it."""
    src, doc = primitives(tmp_path)
    patch = decoded_mask(doc)
    assert patch.shape == (100, 100) and patch.sum() == 7275
    run("labelme", src, tmp_path / "ds", PRIMITIVE_MAP)
    lab = read_label(tmp_path / "ds" / "labels" / "primitives.png")
    assert lab.shape == (450, 560)
    expected = np.zeros(lab.shape, bool)
    expected[305:405, 417:517] = patch
    assert np.array_equal(lab == 3, expected)                  # disc: exactly the mask, nothing else
    assert lab[85, 80] == 1 and lab[100, 210] == 2             # the rectangle and the circle still there


def test_mask_shape_with_whole_number_corners_is_cut_to_its_box(tmp_path):
    def edit(doc):
        next(s for s in doc["shapes"] if s["shape_type"] == "mask")["points"] = [[417, 305], [466, 354]]
    src, doc = primitives(tmp_path, edit)
    run("labelme", src, tmp_path / "ds", PRIMITIVE_MAP)
    lab = read_label(tmp_path / "ds" / "labels" / "primitives.png")
    expected = np.zeros(lab.shape, bool)
    expected[305:355, 417:467] = decoded_mask(doc)[:50, :50]   # corners included: 50 x 50
    assert np.array_equal(lab == 3, expected)


def test_mask_shape_partly_outside_the_image_is_clipped(tmp_path):
    def edit(doc):
        next(s for s in doc["shapes"] if s["shape_type"] == "mask")["points"] = [[-10.5, -20.5], [88.5, 78.5]]
    src, doc = primitives(tmp_path, edit)
    run("labelme", src, tmp_path / "ds", PRIMITIVE_MAP)
    lab = read_label(tmp_path / "ds" / "labels" / "primitives.png")
    patch = decoded_mask(doc)
    # -10.5, -20.5 round half to even: -10, -20
    assert np.array_equal(lab[:80, :90] == 3, patch[20:, 10:]) and (lab[80:, :] != 3).all() and (lab[:, 90:] != 3).all()


@pytest.mark.parametrize("change, message", [
    ({"mask": None}, r"shape #5 \('octagon', mask\): has no 'mask' \(a mask shape holds its pixels as a base64 PNG\)"),
    ({"mask": "not base64!"}, r"shape #5 \('octagon', mask\): 'mask' is not valid base64"),
    ({"mask": base64.b64encode(b"hello").decode()}, r"shape #5 \('octagon', mask\): not a readable mask PNG"),
    ({"points": [[1, 1], [5, 5], [9, 9]]}, r"shape #5 \('octagon', mask\): needs 2 points, has 3"),
    ({"points": [[50, 50], [10, 10]]}, r"shape #5 \('octagon', mask\): the second point must be the bottom-right"),
])
def test_bad_mask_shapes_are_one_line_errors(tmp_path, change, message):
    def edit(doc):
        next(s for s in doc["shapes"] if s["shape_type"] == "mask").update(change)
    src, _ = primitives(tmp_path, edit)
    with pytest.raises(EndoSpineError, match=message) as info:
        run("labelme", src, tmp_path / "ds", PRIMITIVE_MAP)
    assert str(info.value).startswith(str(src / "primitives.json")) and "\n" not in str(info.value)
    assert no_partial_output(tmp_path)


# -- Labelme: '__ignore__' and '_background_' -------------------------------------------------
def test_ignore_label_matches_labelme2voc(tmp_path):
    """examples/semantic_segmentation/data_annotated/2011_000003.json has an '__ignore__' polygon;
    Labelme's labelme2voc wrote it as 255 in data_dataset_voc/SegmentationClass/2011_000003.png.
    The photo is not kept here: a blank image of the declared size stands in for it."""
    doc = json.loads(VOC_JSON.read_text())
    assert doc["imageData"] is None and {s["label"] for s in doc["shapes"]} == {"person", "bottle", "__ignore__"}
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(VOC_JSON, src)
    write_image(src / doc["imagePath"], np.zeros((doc["imageHeight"], doc["imageWidth"], 3), np.uint8))
    report = run("labelme", src, tmp_path / "ds", {"person": "bone", "bottle": "disc"})   # no map for __ignore__
    assert report.pixels[255] > 0
    ours = read_label(tmp_path / "ds" / "labels" / "2011_000003.png")
    voc = VOC_JSON.parents[1] / "data_dataset_voc"
    ref = labelme_reference(voc / "SegmentationClass" / "2011_000003.png")
    names = (voc / "class_names.txt").read_text().split("\n")
    for ref_value, our_value in ((names.index("person"), 1), (names.index("bottle"), 3), (255, 255), (0, 0)):
        assert iou(ref == ref_value, ours == our_value) > 0.98, ref_value


def test_background_label_paints_background_and_a_map_overrides_the_conventions(tmp_path):
    doc = json.loads(APC.read_text())
    for s in doc["shapes"]:
        if s["label"] == "mead_index_cards":
            s["label"] = "_background_"
    src = tmp_path / "src"
    copy_doc(doc, src, "a.json")
    run("labelme", src, tmp_path / "ds", APC_MAP)
    first = read_label(tmp_path / "ds" / "labels" / "a.png")
    assert not (first == 3).any()                         # the cards are background now, cut out of the shelf
    base = read_label(run_apc(tmp_path))
    assert np.array_equal(first == 0, (base == 0) | (base == 3))
    assert label_id("__ignore__", LUMBAR, LabelMap(), "f.json") == LUMBAR.ignore_index
    assert label_id("_background_", LUMBAR, LabelMap(), "f.json") == 0
    assert label_id("__ignore__", LUMBAR, LabelMap(names={"__ignore__": 2}), "f.json") == 2


def run_apc(tmp_path: Path) -> Path:
    run("labelme", APC, tmp_path / "apc", APC_MAP)
    return tmp_path / "apc" / "labels" / "apc2016_obj3.png"


# -- duplicates -------------------------------------------------------------------------------
def test_labelme_duplicate_with_the_same_labels_is_imported_once_with_a_warning(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(APC, src / "a.json")
    shutil.copy(APC, src / "b.json")
    map_file = tmp_path / "map.yaml"
    map_file.write_text("".join(f"{k}: {v}\n" for k, v in APC_MAP.items()))
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "ds"), "--map", str(map_file),
                 "--classes", str(write_lumbar(tmp_path)), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert f"warning: 1 duplicate image(s), the same bytes and the same labels as another, imported once: " \
           f"{src / 'b.json'} (embedded imageData) (a copy of {src / 'a.json'} (embedded imageData))" in out
    assert [it.image for it in load_dataset(tmp_path / "ds").items] == ["images/a.jpg"]
    assert sorted(p.name for p in (tmp_path / "ds" / "images").iterdir()) == ["a.jpg"]
    assert validate_dataset(tmp_path / "ds", workers=1).ok


def test_labelme_duplicate_with_different_labels_is_a_one_line_error(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(APC, src / "a.json")
    doc = json.loads(APC.read_text())
    doc["shapes"][1]["label"] = "mead_index_cards"          # the same frame, one object labelled otherwise
    copy_doc(doc, src, "b.json")
    map_file = tmp_path / "map.yaml"
    map_file.write_text("".join(f"{k}: {v}\n" for k, v in APC_MAP.items()))
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "ds"), "--map", str(map_file),
                 "--classes", str(write_lumbar(tmp_path)), "--workers", "2"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err == (f"endospine-model: error: {src / 'b.json'} (embedded imageData): the same image (same bytes) as "
                   f"{src / 'a.json'} (embedded imageData), but labelled differently (b.json and a.json disagree); "
                   "remove one copy or make the labels agree")
    assert "Traceback" not in captured.out + captured.err
    assert no_partial_output(tmp_path)


def write_lumbar(tmp_path: Path) -> Path:
    path = tmp_path / "lumbar.yaml"
    path.write_text("name: test-lumbar\nignore_index: 255\nclasses:\n"
                    + "".join(f"  - {{id: {c.id}, name: {c.name}, color: {list(c.color)}}}\n" for c in LUMBAR.classes))
    return path


# -- CVAT 'Segmentation mask 1.1' (Datumaro's VOC segmentation layout) -------------------------
def voc_map() -> dict:
    """Every label of the sample's labelmap.txt: bicycle (its one mask's color) is bone."""
    names = [line.split(":")[0] for line in (CVAT / "labelmap.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {n: {"background": "background", "bicycle": "bone"}.get(n, "ignore") for n in names}


def test_cvat_sample_imports_and_validates(tmp_path):
    report = run("cvat", CVAT, tmp_path / "ds", voc_map())
    ds = load_dataset(tmp_path / "ds")
    assert report.images == 1 and [it.image for it in ds.splits["train"]] == ["images/2007_000001.jpg"]
    assert (read_label(tmp_path / "ds" / "labels" / "2007_000001.png") == 1).all()     # (0,128,0) bicycle -> bone
    # test.txt lists 2007_000002, which has no mask (Datumaro lists only annotated images)
    assert "not imported, no mask in SegmentationClass/ (not annotated): 1 listed image(s), " \
           "e.g. 2007_000002 (in test.txt)" in report.notes
    assert validate_dataset(tmp_path / "ds", workers=1).ok


def cvat_copy(tmp_path: Path, second_mask: np.ndarray | None) -> Path:
    """The sample with a mask for 2007_000002 too: its JPEG has the same bytes as 2007_000001's."""
    src = tmp_path / "src"
    shutil.copytree(CVAT, src)
    jpegs = src / "JPEGImages"
    assert (jpegs / "2007_000001.jpg").read_bytes() == (jpegs / "2007_000002.jpg").read_bytes()
    target = src / "SegmentationClass" / "2007_000002.png"
    if second_mask is None:
        shutil.copy(src / "SegmentationClass" / "2007_000001.png", target)
    else:
        cv2.imwrite(str(target), second_mask)
    return src


def test_cvat_duplicate_with_the_same_labels_is_imported_once(tmp_path):
    src = cvat_copy(tmp_path, None)
    report = run("cvat", src, tmp_path / "ds", voc_map())
    assert report.images == 1 and len(report.warnings) == 1
    assert f"{src / 'JPEGImages' / '2007_000001.jpg'} (a copy of {src / 'JPEGImages' / '2007_000002.jpg'})" \
        in report.warnings[0]
    assert validate_dataset(tmp_path / "ds", workers=1).ok


def test_cvat_duplicate_with_different_labels_is_refused_and_nothing_written(tmp_path):
    src = cvat_copy(tmp_path, np.zeros((10, 20, 3), np.uint8))          # all background
    with pytest.raises(EndoSpineError) as info:
        run("cvat", src, tmp_path / "ds", voc_map())
    assert str(info.value) == (f"{src / 'JPEGImages' / '2007_000001.jpg'}: the same image (same bytes) as "
                               f"{src / 'JPEGImages' / '2007_000002.jpg'}, but labelled differently "
                               "(2007_000001.png and 2007_000002.png disagree); remove one copy or make the labels "
                               "agree")
    assert no_partial_output(tmp_path)


# -- --clip-from and PaddleSeg lists ----------------------------------------------------------
def masks_source(root: Path, names: list[str]) -> Path:
    for n, name in enumerate(names):
        write_image(root / "images" / f"{name}.png", picture(n))
        write_label(root / "masks" / f"{name}.png", stripes())
    return root


@pytest.mark.parametrize("pattern, name, message", [
    (r"^()(\d+)$", "000120",
     r"masks/000120.png: --clip-from '\^\(\)\(\\d\+\)\$' matches '000120' \('000120'\) but group 1, the clip id, "
     r"is empty; make it match at least one character"),
    (r"^(case)?_?(\d+)$", "000120", r"masks/000120.png: --clip-from .* but group 1, the clip id, takes no part"),
    (r"^(.+)_(\d*)$", "case03_", r"masks/case03_.png: --clip-from .* matches 'case03_' but group 2, the frame index, "
                                 r"is empty"),
    (r"^(.+)_(\w+)$", "case03_²", r"masks/case03_².png: --clip-from .*: group 2 must be a frame number "
                                  r"\(digits 0-9\), got '²'"),
    (r"^(clip)_", "case03_000120",
     r"masks/case03_000120.png: --clip-from '\^\(clip\)_' does not match 'case03_000120'"),
])
def test_clip_from_errors_say_what_went_wrong(tmp_path, pattern, name, message):
    src = masks_source(tmp_path / "src", [name])
    with pytest.raises(EndoSpineError, match=message) as info:
        run("masks", src, tmp_path / "ds", clip_from=pattern)
    assert "\n" not in str(info.value)
    assert no_partial_output(tmp_path)


def test_paddleseg_without_lists_names_every_accepted_list_name(tmp_path):
    src = masks_source(tmp_path / "src", ["a"])
    with pytest.raises(EndoSpineError, match=r"src: no train.txt, val.txt or test.txt, nor train_list.txt, "
                                             r"val_list.txt or test_list.txt \(PaddleSeg list files\)"):
        run("paddleseg", src, tmp_path / "ds")
