"""prelabel: mask -> polygons, and the round trip prelabel -> import gives back the model's masks."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.imageio import read_image, read_label
from models.core.runtime.backends import SegmentationRuntime
from models.core.runtime.postprocess import paste_into_frame
from models.dataset import load_dataset
from models.datatools.labelme import parse_shapes, rasterize
from models.datatools.polygons import mask_polygons


def _painted(labels, ids, **kw):
    """mask -> polygons -> painted back the way the Labelme importer paints them."""
    polys = mask_polygons(labels, ids, **kw)
    shapes = parse_shapes([{"label": str(p.class_id), "points": p.points.tolist(), "shape_type": "polygon"}
                           for p in polys])
    return rasterize(shapes, [p.class_id for p in polys], *labels.shape), polys


@pytest.mark.unit
def test_polygons_paint_back_holes_nested_classes_and_dots():
    lab = np.zeros((60, 60), np.uint8)
    lab[5:50, 5:50] = 1          # a region with a hole ...
    lab[15:30, 15:30] = 0        # ... of background (a background polygon after it)
    lab[18:25, 18:25] = 2        # ... holding another class (its own polygon, after the hole)
    lab[35:45, 35:45] = 3        # a hole of another class
    lab[40:43, 40:43] = 255      # unlabelled inside that: comes back as background
    lab[55, 55] = 3              # a dot (3 repeated points)
    lab[2, 40:58] = 2            # a 1 px line
    out, polys = _painted(lab, [1, 2, 3], min_area=0)
    known = lab != 255
    assert np.array_equal(out[known], lab[known])
    assert (out[40:43, 40:43] == 0).all()
    assert all(len(p.points) >= 3 for p in polys)
    assert [p.class_id for p in polys][:3] == [1, 0, 3] and polys[0].points.shape == (4, 2)   # a square: 4 corners


@pytest.mark.unit
def test_min_area_drops_small_regions_and_holes():
    lab = np.zeros((40, 40), np.uint8)
    lab[5:35, 5:35] = 1
    lab[10:12, 10:12] = 0        # a 4 px hole: filled by the region around it
    lab[20:22, 20:22] = 2        # a 4 px region inside: painted as what is under it
    lab[37:39, 37:39] = 2        # a 4 px region outside: background
    out, _ = _painted(lab, [1, 2], min_area=5)
    expected = np.zeros_like(lab)
    expected[5:35, 5:35] = 1
    assert np.array_equal(out, expected)


@pytest.mark.unit
def test_polygons_of_an_empty_mask():
    assert mask_polygons(np.zeros((8, 8), np.uint8), [1, 2]) == []
    assert mask_polygons(np.full((8, 8), 255, np.uint8), [1, 2], min_area=0) == []


def _model_masks(model, files):
    rt = SegmentationRuntime(model).independent_frames()
    out = {}
    for path in files:
        rgb = read_image(path)
        labels, box, _ = rt.segment(rgb)
        out[path.stem] = paste_into_frame(labels, box, (rgb.shape[1], rgb.shape[0]))
    return rt.classes, out


REGION_PX = 200


def _ious(reference: np.ndarray, got: np.ndarray, n_classes: int) -> dict[int, float]:
    known = reference != 255
    ref, got = reference[known], got[known]
    return {c: float(((ref == c) & (got == c)).sum() / ((ref == c) | (got == c)).sum())
            for c in range(n_classes) if (ref == c).any()}


@pytest.fixture(scope="module")
def images(tiny_model, tmp_path_factory):
    data = tiny_model[0]
    folder = tmp_path_factory.mktemp("prelabel") / "frames"
    folder.mkdir()
    for it in load_dataset(data).items[:3]:
        src = data / it.image
        shutil.copyfile(src, folder / src.name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("fmt, flags, least_agree, least_iou", [
    ("cvat", [], 1.0, 1.0),
    ("labelme", ["--min-area", "0", "--simplify", "0"], 1.0, 1.0),
    ("labelme", ["--min-area", "0"], 0.99, 0.95),
    ("labelme", ["--min-area", "0", "--simplify", "1"], 0.96, 0.88)])
def test_round_trip(tiny_model, images, tmp_path, fmt, flags, least_agree, least_iou):
    """prelabel, then import with the model's class table: the model's masks come back (unlabelled
    pixels left out). CVAT masks are exact; Labelme polygons too with --simplify 0 and --min-area 0
    (the untrained model's speckle kept): every pixel agrees. Simplified, regions lose corners:
    checked as the share of pixels that agree and the IoU of every class with at least REGION_PX
    pixels in an image. The untrained model's speckle (a class of a few dozen pixels in scattered
    dots) depends on the CPU's arithmetic and loses most of itself to any simplification, so it is
    not held to an IoU. Measured on a Xeon (AVX-512): agreement 0.996 and class IoU >= 0.980 at
    0.5 px (the default), 0.984 and >= 0.945 at 1 px (the bounds leave room for other CPUs). The
    shipped model's larger regions keep 0.996-0.999 per class at 0.5 px (prelabel.py)."""
    model = tiny_model[2]
    classes, masks = _model_masks(model, sorted(images.iterdir()))
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump(classes.to_dict()))
    out, ds = tmp_path / "pre", tmp_path / "ds"
    assert main(["prelabel", "--model", str(model), "--images", str(images), "--format", fmt, "--out", str(out),
                 *flags]) == 0
    assert main(["import", fmt, str(out), "--out", str(ds), "--classes", str(table), "--workers", "1"]) == 0
    dataset = load_dataset(ds)
    assert len(dataset.items) == len(masks)
    held = 0
    for it in dataset.items:
        stem = it.image.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        ref, got = masks[stem], read_label(dataset.path(it.label))
        known = ref != 255
        agree = float((ref[known] == got[known]).mean())
        ious = {c: iou for c, iou in _ious(ref, got, len(classes)).items() if (ref == c).sum() >= REGION_PX}
        print(f"{fmt} {stem}: agreement {agree:.4f}, IoU of classes >= {REGION_PX} px {ious}")
        assert agree >= least_agree and min(ious.values()) >= least_iou, (stem, agree, ious)
        held += len(ious)
    assert held >= 2 * len(dataset.items)   # the check saw real regions, not only speckle

    with open(out / "prelabel.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] and sorted(r["image"] for r in rows) == sorted(p.name for p in images.iterdir())
    scores = [float(r["gate_score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(r["passed"] in ("true", "false") for r in rows)
    if fmt == "labelme":
        doc = json.loads((out / f"{rows[0]['image'].rsplit('.', 1)[0]}.json").read_text())
        assert doc["imageData"] is None and (out / doc["imagePath"]).is_file()
        assert doc["endospine"]["gate_score"] == pytest.approx(scores[0], abs=1e-4)
        assert {s["shape_type"] for s in doc["shapes"]} == {"polygon"}


def test_bad_images_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "model").mkdir()   # the folder is checked before the model is loaded
    assert main(["prelabel", "--model", str(tmp_path / "model"), "--images", str(tmp_path / "empty"),
                 "--format", "labelme", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty: no images" in err
    assert not (tmp_path / "o").exists()
