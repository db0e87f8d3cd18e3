"""Fuzzing the parsers of files EndoSpine reads from other people: annotation exports (Labelme,
CVAT label maps, mask maps), class tables, dataset folders, model manifests and images.

Every input must either parse or raise EndoSpineError (one clear line); any other exception is a
crash and fails the test. Hypothesis shrinks a failure to its smallest input. The number of
examples per parser is ENDOSPINE_FUZZ_EXAMPLES (default 60 for the suite; a fuzz campaign sets it
to thousands).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.core.classes import ClassTable, default_classes
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label
from models.core.runtime.manifest import load_manifest
from models.dataset import load_dataset
from models.datatools.cvat import parse_labelmap
from models.datatools.importers import ImportOptions
from models.datatools.labelme import read_labelme
from models.datatools.masks import load_label_map

EXAMPLES = int(os.environ.get("ENDOSPINE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("ENDOSPINE_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

pytestmark = pytest.mark.unit

scalars = (st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
numbers = st.integers(-10 ** 12, 10 ** 12) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4)
points = st.lists(st.lists(numbers, min_size=0, max_size=3), max_size=6) | json_values
shapes = st.fixed_dictionaries(
    {"label": st.sampled_from(["bone", "ligament", "disc", "background", "nerve", ""]) | json_values,
     "points": points},
    optional={"shape_type": st.sampled_from(["polygon", "rectangle", "circle", "line", "point", "mask"]) | json_values})
labelme_docs = st.fixed_dictionaries(
    {"shapes": st.lists(shapes, max_size=4) | json_values},
    optional={"imagePath": st.just("img.png") | json_values, "imageData": json_values,
              "imageHeight": st.just(32) | json_values, "imageWidth": st.just(48) | json_values})


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def _parses_or_refuses(fn, *args):
    try:
        return fn(*args)
    except EndoSpineError as exc:
        assert "\n" not in str(exc).strip(), f"error message is not one line: {exc}"
        return None


@FUZZ
@given(doc=labelme_docs | json_values, raw=st.booleans())
def test_labelme(tmp_path_factory, doc, raw):
    tmp = tmp_path_factory.mktemp("labelme")
    cv2.imwrite(str(tmp / "img.png"), np.zeros((32, 48, 3), np.uint8))
    text = json.dumps(doc, allow_nan=True) if not raw else json.dumps(doc)[: max(1, len(json.dumps(doc)) // 2)]
    path = _write(tmp, "a.json", text)
    read = _parses_or_refuses(read_labelme, path, ImportOptions(classes=default_classes()))
    for pair in read[0] if read else []:
        labels = _parses_or_refuses(pair.label, 32, 48)
        if labels is not None:
            assert labels.shape == (32, 48) and labels.dtype == np.uint8


@FUZZ
@given(text=st.text(max_size=300) | st.lists(st.tuples(st.text(max_size=10), st.text(alphabet="0123456789, -", max_size=14)),
                                              max_size=6).map(lambda rows: "\n".join(f"{a}:{b}::" for a, b in rows)))
def test_cvat_labelmap(tmp_path_factory, text):
    path = _write(tmp_path_factory.mktemp("cvat"), "labelmap.txt", text)
    colors = _parses_or_refuses(parse_labelmap, path, ImportOptions(classes=default_classes()))
    assert colors is None or all(0 <= v <= 255 for v in colors.values())


@FUZZ
@given(doc=json_values | st.dictionaries(scalars, scalars, max_size=5))
def test_mask_label_map(tmp_path_factory, doc):
    path = _write(tmp_path_factory.mktemp("map"), "map.yaml", yaml.safe_dump(doc) if _dumpable(doc) else str(doc))
    _parses_or_refuses(load_label_map, path, default_classes())


@FUZZ
@given(doc=json_values | st.fixed_dictionaries({"classes": st.lists(st.dictionaries(
    st.sampled_from(["id", "name", "color"]), json_values, max_size=3), max_size=4)}))
def test_class_table(tmp_path_factory, doc):
    path = _write(tmp_path_factory.mktemp("classes"), "classes.yaml", yaml.safe_dump(doc) if _dumpable(doc) else "x: [")
    _parses_or_refuses(ClassTable.load, path)


@FUZZ
@given(change=st.sampled_from(["drop", "replace"]), where=st.integers(0, 10 ** 6), value=json_values,
       list_line=st.text(max_size=40))
def test_dataset_folder(tmp_path_factory, dataset_dir, change, where, value, list_line):
    tmp = tmp_path_factory.mktemp("ds") / "d"
    shutil.copytree(dataset_dir, tmp)
    meta = yaml.safe_load((tmp / "dataset.yaml").read_text())
    _mutate(meta, change, where, value)
    (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta) if _dumpable(meta) else "items: {")
    with (tmp / "val.txt").open("a", encoding="utf-8", errors="surrogateescape") as f:
        f.write(list_line + "\n")
    _parses_or_refuses(load_dataset, tmp)


@FUZZ
@given(change=st.sampled_from(["drop", "replace"]), where=st.integers(0, 10 ** 6), value=json_values)
def test_manifest(tmp_path_factory, tiny_model_dir, change, where, value):
    tmp = tmp_path_factory.mktemp("model") / "m"
    shutil.copytree(tiny_model_dir, tmp)
    manifest = yaml.safe_load((tmp / "manifest.yaml").read_text())
    _mutate(manifest, change, where, value)
    (tmp / "manifest.yaml").write_text(yaml.safe_dump(manifest) if _dumpable(manifest) else "files: [")
    loaded = _parses_or_refuses(load_manifest, tmp)
    if loaded is not None:  # whatever it accepts points at files inside the folder only
        for entry in loaded.files.values():
            assert (tmp / entry["path"]).resolve().is_relative_to(tmp.resolve())


@FUZZ
@given(kind=st.sampled_from([".png", ".jpg", "gray.png", "16.png"]), flips=st.lists(
    st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=8), cut=st.floats(0.05, 1.0))
def test_images_and_labels(tmp_path_factory, kind, flips, cut):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (24, 40, 3), np.uint8) if "gray" not in kind else rng.integers(0, 4, (24, 40), np.uint8)
    if kind == "16.png":
        img = img.astype(np.uint16) * 257
    data = bytearray(cv2.imencode(kind[-4:], img)[1].tobytes())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    data = bytes(data[: max(1, int(len(data) * cut))])
    path = _write(tmp_path_factory.mktemp("img"), "x" + kind[-4:], data)
    rgb = _parses_or_refuses(read_image, path)
    assert rgb is None or (rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3)
    labels = _parses_or_refuses(read_label, path)
    assert labels is None or (labels.dtype == np.uint8 and labels.ndim == 2)


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from models.synth.generate import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("base") / "data", clips=3, frames=1, width=64, height=64,
                            seed=3, workers=1, progress=False)


def _dumpable(doc) -> bool:
    try:
        yaml.safe_dump(doc)
        return True
    except yaml.YAMLError:
        return False


def _mutate(doc, change: str, where: int, value) -> None:
    """Drop or replace the where-th node (pre-order) of a nested dict/list document."""
    nodes = []

    def walk(node):
        if isinstance(node, dict):
            for key in node:
                nodes.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for i in range(len(node)):
                nodes.append((node, i))
                walk(node[i])

    walk(doc)
    if not nodes:
        return
    parent, key = nodes[where % len(nodes)]
    if change == "drop":
        del parent[key]
    else:
        parent[key] = value
