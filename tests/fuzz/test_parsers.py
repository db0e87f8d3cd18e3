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
from hypothesis import HealthCheck, example, given, settings
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


# -- Labelme and CVAT readers under hostile geometry and bytes (issue 19) -------------------------
extreme = (st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e12, -1e12, 1e30, -1e30, 2.0 ** 31, 1e308])
           | st.integers(-10 ** 40, 10 ** 40) | st.floats(-300, 300))
geometry = st.lists(st.fixed_dictionaries(
    {"label": st.sampled_from(["bone", "disc"]), "points": st.lists(st.lists(extreme, min_size=2, max_size=2),
                                                                    min_size=1, max_size=6),
     "shape_type": st.sampled_from(["polygon", "rectangle", "circle"])}), min_size=1, max_size=3)


@FUZZ
@given(shapes=geometry, declared=st.booleans())
def test_labelme_geometry(tmp_path_factory, shapes, declared):
    """Any coordinates: painted inside a 48x32 canvas, or refused in one line naming the shape; fast."""
    import time

    tmp = tmp_path_factory.mktemp("labelme_geo")
    cv2.imwrite(str(tmp / "img.png"), np.zeros((32, 48, 3), np.uint8))
    doc = {"shapes": shapes, "imagePath": "img.png", **({"imageHeight": 32, "imageWidth": 48} if declared else {})}
    path = _write(tmp, "a.json", json.dumps(doc, allow_nan=True))
    start = time.perf_counter()
    try:
        pairs, _ = read_labelme(path, ImportOptions(classes=default_classes()))
        labels = pairs[0].label(32, 48)
        assert labels.shape == (32, 48) and labels.dtype == np.uint8
    except EndoSpineError as exc:
        assert "\n" not in str(exc) and "a.json" in str(exc) and "shape #" in str(exc), str(exc)
    assert time.perf_counter() - start < 2.0


@FUZZ
@given(cut=st.integers(0, 10 ** 6), inserts=st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(
    [b"[", b"]", b"{", b"}", b'"', b"\\", b"\xff", b"\x00", b"[" * 3000, b"NaN", b"1e999", b"9" * 5000])), max_size=6))
@example(cut=1, inserts=[(11, b"[" * 3000)])   # nested 3000 deep: json.loads alone ends in RecursionError
def test_labelme_bytes(tmp_path_factory, cut, inserts):
    """A valid Labelme file with bytes inserted (brackets, quotes, deep nesting, huge numbers) and cut."""
    tmp = tmp_path_factory.mktemp("labelme_bytes")
    cv2.imwrite(str(tmp / "img.png"), np.zeros((32, 48, 3), np.uint8))
    data = bytearray(json.dumps({"shapes": [{"label": "bone", "points": [[1, 1], [20, 2], [10, 30]]},
                                            {"label": "disc", "points": [[5, 5], [9, 5]], "shape_type": "circle"}],
                                 "imagePath": "img.png", "imageHeight": 32, "imageWidth": 48}).encode())
    for pos, chunk in inserts:
        data[pos % (len(data) + 1):pos % (len(data) + 1)] = chunk
    data = data[: max(1, len(data) - cut % 8)] if cut % 3 == 0 else data
    path = _write(tmp, "a.json", bytes(data))
    read = _parses_or_refuses(read_labelme, path, ImportOptions(classes=default_classes()))
    for pair in read[0] if read else []:
        _parses_or_refuses(pair.label, 32, 48)


@pytest.fixture(scope="module")
def cvat_dir(tmp_path_factory):
    """A two-image CVAT 'Segmentation mask 1.1' export."""
    root = tmp_path_factory.mktemp("cvat_base") / "export"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nbone:250,50,83::\n")
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[:, 16:] = (83, 50, 250)  # BGR of bone
    for name in ("a", "b"):
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), np.full((24, 32, 3), 90, np.uint8))
        cv2.imwrite(str(root / "SegmentationClass" / f"{name}.png"), mask)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")
    return root


@FUZZ
@given(labelmap=st.none() | st.text(max_size=200) | st.binary(max_size=60), subset=st.none() | st.text(max_size=60)
       | st.sampled_from(["../../etc/passwd\n", "a\na\n", "/abs\n", "a\x00\n", "c\n"]),
       flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6))
def test_cvat_export(tmp_path_factory, cvat_dir, labelmap, subset, flips):
    """The whole CVAT reader and import on an export whose labelmap, subset list and mask bytes are edited."""
    from models.datatools.importers import import_dataset

    tmp = tmp_path_factory.mktemp("cvat") / "export"
    shutil.copytree(cvat_dir, tmp)
    if labelmap is not None:
        _write(tmp, "labelmap.txt", labelmap)
    if subset is not None:
        _write(tmp, "ImageSets/Segmentation/train.txt", subset)
    mask = tmp / "SegmentationClass" / "a.png"
    data = bytearray(mask.read_bytes())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    mask.write_bytes(bytes(data))
    report = _parses_or_refuses(import_dataset, "cvat", tmp, tmp.parent / "ds", ImportOptions(classes=default_classes(),
                                                                                              workers=1))
    if report is not None:
        assert report.images >= 1 and (tmp.parent / "ds" / "dataset.yaml").is_file()


# -- the YAML loader, profiles and training settings (issue 19) -----------------------------------
yaml_bits = st.sampled_from(["a", "b: ", "- ", "[", "]", "{", "}", ", ", ": ", "\n", "  ", "&x ", "*x", "&y ", "*y",
                             "<<: ", "'q *x'", '"*y"', "off", "yes", "true", "1.5", ".nan", "~", "!!str ", "? ", "#"])


def _read_or_refuse(path, seconds: float = 2.0):
    """read_yaml: data or a one-line EndoSpineError naming the file, within `seconds`."""
    import time

    from models.core.yamlio import read_yaml

    start = time.perf_counter()
    try:
        return read_yaml(path)
    except EndoSpineError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
        return exc
    finally:
        assert time.perf_counter() - start < seconds


@FUZZ
@given(bits=st.lists(yaml_bits, max_size=60))
def test_yaml_loader_text(tmp_path_factory, bits):
    """YAML-ish text: parsed or one line; never an alias; on/off/yes/no never booleans."""
    from models.core.yamlio import SafeLoader

    text = "".join(bits)
    path = _write(tmp_path_factory.mktemp("y"), "f.yaml", text)
    got = _read_or_refuse(path)
    try:
        has_alias = any(isinstance(t, yaml.AliasToken) for t in yaml.scan(text, Loader=SafeLoader))
    except yaml.YAMLError:
        has_alias = False
    if has_alias:  # never loaded (refused as an alias, or as broken YAML when the alias is misplaced)
        assert isinstance(got, EndoSpineError)
    if not isinstance(got, EndoSpineError):
        stack = [got]
        while stack:
            node = stack.pop()
            assert not isinstance(node, bool) or "true" in text
            stack.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])


@FUZZ
@given(levels=st.integers(1, 12), width=st.integers(2, 12), merge=st.booleans(), flow=st.booleans(),
       inside=st.sampled_from(["profile", "dataset", "bare"]))
def test_yaml_alias_bombs(tmp_path_factory, levels, width, merge, flow, inside):
    """Nested aliases (or merge keys) that expand to width**levels values: refused fast, naming the file."""
    lines = ["l0: &l0 " + ("{k0: lol}" if merge else "[lol]")]
    for i in range(1, levels + 1):
        refs = [f"*l{i - 1}"] * width
        body = (f"{{<<: [{', '.join(refs)}], k{i}: {i}}}" if merge else f"[{', '.join(refs)}]") if flow or merge else \
            "\n" + "".join(f"  - {r}\n" for r in refs).rstrip("\n")
        lines.append(f"l{i}: &l{i} {body}")
    head = {"profile": "format: endospine-profile/1\n", "dataset": "format: endospine-dataset/1\n", "bare": ""}[inside]
    path = _write(tmp_path_factory.mktemp("bomb"), "bomb.yaml", head + "\n".join(lines) + "\n")
    got = _read_or_refuse(path)
    assert isinstance(got, EndoSpineError) and "alias" in str(got)


@FUZZ
@given(depth=st.integers(1, 3000), style=st.sampled_from(["flow-list", "flow-map", "block-map", "block-list"]))
def test_yaml_deep_nesting(tmp_path_factory, depth, style):
    from models.core.yamlio import MAX_DEPTH

    text = {"flow-list": "[" * depth + "]" * depth, "flow-map": "{a: " * depth + "1" + "}" * depth,
            "block-map": "".join(f"{' ' * i}k:\n" for i in range(depth)) + " " * depth + "v\n",
            "block-list": "- " * depth + "x\n"}[style]
    got = _read_or_refuse(_write(tmp_path_factory.mktemp("deep"), "deep.yaml", text))
    if depth > MAX_DEPTH + 1:
        assert isinstance(got, EndoSpineError)


def _full_profile_doc() -> dict:
    from models.core.optics.profile import Profile

    return Profile.from_dict({
        "format": "endospine-profile/1", "name": "OR3",
        "fov": {"mode": "fixed", "frame_size": [640, 480], "center": [320.0, 240.0], "radius": 200.0, "notch_deg": 10.0,
                "undistorted": True},
        "color": {"mode": "gains", "gains": [1.1, 1.0, 0.9]},
        "lens": {"model": "fisheye", "image_size": [640, 480], "camera_matrix": [[300, 0, 320], [0, 300, 240], [0, 0, 1]],
                 "distortion": [0.05, -0.02, 0.004, -0.001], "valid_radius": 300.0},
        "latency": {"p50_ms": 90.0, "p95_ms": 100.0, "max_ms": 120.0, "samples": 50},
        "capture": {"device": 0, "backend": "v4l2", "width": 640, "height": 480, "fps": 30.0},
        "timing": {"no_signal_after_s": 0.6}}).to_dict()


hostile_numbers = (st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 1e-300, 0, -1, 2 ** 63,
                                    10 ** 30, 0.5, 16, 8193, True, "off", "lots", None, [], {}])
                   | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10 ** 20, 10 ** 20))


@FUZZ
@given(change=st.sampled_from(["drop", "replace", "number", "add"]), where=st.integers(0, 10 ** 6),
       value=json_values, number=hostile_numbers)
def test_profile(tmp_path_factory, change, where, value, number):
    """A valid profile with one node dropped or replaced: loads (and round-trips) or is one line."""
    from models.core.optics.profile import load_profile, save_profile

    doc = _full_profile_doc()
    if change == "add":  # a key of any kind, at the top or in a section
        sections = [doc] + [v for v in doc.values() if isinstance(v, dict)]
        sections[where % len(sections)][value if isinstance(value, (str, int, float, type(None))) else str(value)] = number
    elif change == "number":
        _mutate_number(doc, where, number)
    else:
        _mutate(doc, change, where, value)
    tmp = tmp_path_factory.mktemp("profile")
    path = _write(tmp, "p.yaml", yaml.safe_dump(doc) if _dumpable(doc) else "fov: {")
    profile = _parses_or_refuses(load_profile, path)
    if profile is not None:  # what it accepts it writes back readable (numbers rounded to 6 decimals, once)
        _assert_finite(profile.to_dict())
        once = load_profile(save_profile(profile, tmp / "again.yaml"))
        assert load_profile(save_profile(once, tmp / "twice.yaml")) == once


@FUZZ
@given(which=st.sampled_from(["train", "gan"]), change=st.sampled_from(["drop", "replace", "add", "number"]),
       where=st.integers(0, 10 ** 6), value=json_values, number=hostile_numbers)
def test_training_settings(tmp_path_factory, which, change, where, value, number):
    """Training or GAN settings with one node changed: a checked config or one line naming the file."""
    from models.gan.config import GanConfig
    from models.train.config import TrainConfig

    kind = TrainConfig if which == "train" else GanConfig
    doc = kind().to_dict()
    if which == "train":
        doc["extra_data"] = [{"path": "gan", "ratio": 0.3}]
    if change == "add":
        doc[str(value)[:10]] = value
    elif change == "number":
        _mutate_number(doc, where, number)
    else:
        _mutate(doc, change, where, value)
    path = _write(tmp_path_factory.mktemp("cfg"), "c.yaml", yaml.safe_dump(doc) if _dumpable(doc) else "iters: [")
    cfg = _parses_or_refuses(kind.load, path)
    if cfg is not None:
        _assert_finite(cfg.to_dict())
        assert all(isinstance(getattr(cfg, f), int) and not isinstance(getattr(cfg, f), bool) and getattr(cfg, f) >= 0
                   for f in ("iters", "batch_size", "seed") + (("workers", "warmup_iters") if which == "train" else ()))
        assert kind.from_dict(cfg.to_dict()) == cfg


def _mutate_number(doc, where: int, value) -> None:
    """Replace the where-th number (pre-order) of a nested document: numbers are where checks fail."""
    spots, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                spots.append((node, key))
            stack.append(v)
    if spots:
        parent, key = spots[where % len(spots)]
        parent[key] = value


def _assert_finite(doc) -> None:
    """Every number in an accepted document is finite (no NaN or infinity reaches the work)."""
    import math

    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            assert math.isfinite(node), doc
        stack.extend(node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else [])
