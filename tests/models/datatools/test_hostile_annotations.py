"""Hostile annotation files (issue 19, defects 10 and 12 for labels): each is refused in one line
naming the file (and the shape), fast, or imported without losing anything. Inputs are made here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.core.errors import EndoSpineError
from models.core.imageio import read_label, write_image, write_label
from models.dataset import load_dataset
from models.datatools import pairs
from models.datatools.common import safe_name, utf8_text
from models.datatools.cvat import parse_labelmap
from models.datatools.importers import ImportOptions, import_dataset
from models.datatools.pairs import json_nesting, load_json_limited
from tests.models.datatools.conftest import LUMBAR, picture, stripes

REPO = Path(__file__).resolve().parents[3]


def labelme_source(root: Path, shapes: list[dict], declared: bool = True, name: str = "f") -> Path:
    write_image(root / f"{name}.png", picture(0, 40, 60))
    doc = {"shapes": shapes, "imagePath": f"{name}.png"}
    if declared:
        doc.update(imageHeight=40, imageWidth=60)
    (root / f"{name}.json").write_text(json.dumps(doc))
    return root


def run(kind: str, src: Path, out: Path):
    return import_dataset(kind, src, out, ImportOptions(classes=LUMBAR, workers=1))


def refused(kind: str, src: Path, out: Path, pattern: str, within_s: float = 3.0) -> str:
    start = time.perf_counter()
    with pytest.raises(EndoSpineError, match=pattern) as info:
        run(kind, src, out)
    assert time.perf_counter() - start < within_s
    assert "\n" not in str(info.value) and not out.exists()
    return str(info.value)


# -- shapes: coordinates and radii bounded by the image ---------------------------------------
@pytest.mark.parametrize("declared", [True, False])   # checked on reading (declared size) and on painting
@pytest.mark.parametrize("shape, message", [
    ({"label": "bone", "points": [[10, 10], [1e12, 10]], "shape_type": "circle"}, r"shape #2 \('bone', circle\): its radius"),
    ({"label": "bone", "points": [[1e30, 0], [0, 1e30], [1e30, 1e30]]}, r"shape #2 \('bone', polygon\): its points reach"),
    ({"label": "disc", "points": [[0, 0], [400, 5]], "shape_type": "rectangle"}, r"shape #2 .*more than 4 image sizes"),
    ({"label": "disc", "points": [[70, 50], [90, 50], [90, 60]]}, r"shape #2 .*lies entirely outside the 60x40 image"),
    ({"label": "disc", "points": [[-30, 10], [-5, 10]], "shape_type": "circle"}, r"shape #2 .*lies entirely outside"),
])
def test_absurd_or_outside_shapes_are_refused_naming_file_and_shape(tmp_path, declared, shape, message):
    good = {"label": "bone", "points": [[0, 0], [10, 0], [10, 10]]}
    src = labelme_source(tmp_path / "src", [good, shape], declared=declared)
    text = refused("labelme", src, tmp_path / "ds", message)
    assert text.startswith(str(src / "f.json"))


def test_nan_points_are_refused(tmp_path):
    src = tmp_path / "src"
    write_image(src / "f.png", picture(0, 40, 60))
    (src / "f.json").write_text('{"shapes": [{"label": "bone", "points": [[0, 0], [NaN, 3], [5, 5]]}], "imagePath": "f.png"}')
    refused("labelme", src, tmp_path / "ds", r"f.json: shape #1 .*not a finite number")


def test_shapes_partly_outside_are_painted_clipped(tmp_path):
    shapes = [{"label": "bone", "points": [[-100, -100], [30, -100], [30, 20], [-100, 20]]},
              {"label": "disc", "points": [[59, 39], [70, 39]], "shape_type": "circle"}]
    run("labelme", labelme_source(tmp_path / "src", shapes), tmp_path / "ds")
    lab = read_label(tmp_path / "ds" / "labels" / "f.png")
    assert lab[0, 0] == 1 and lab[20, 30] == 1 and lab[39, 59] == 3 and lab[39, 0] == 0


# -- the JSON reader: nesting, size, count, odd files --------------------------------------------
@pytest.mark.unit
def test_json_nesting_counts_without_parsing():
    assert json_nesting(b'{"a": [[1, 2], [3, 4]], "b": {}}') == (3, 5)
    assert json_nesting(b'{"label": "[[[{{{", "q": "a\\"]]]"}') == (1, 1)   # brackets in strings do not count
    assert json_nesting(b"[" * 200_000 + b"]" * 200_000) == (200_000, 200_000)
    assert json_nesting(b"42") == (0, 0)


@pytest.mark.parametrize("text, message", [
    ('{"shapes": ' + "[" * 200_000 + "]" * 200_000 + "}", r"JSON nested 200001 levels deep \(the limit is 64\)"),
    ('{"shapes": [], "x": ' + "9" * 5000 + "}", r"not usable JSON \(ValueError"),
    ('{"shapes": [], "x": "\xe4"}'.encode("latin-1"), r"Labelme file is not UTF-8 text"),
    ('{"shapes": [}', r"not valid JSON"),
])
def test_hostile_json_is_one_line(tmp_path, text, message):
    path = tmp_path / "src" / "f.json"
    path.parent.mkdir()
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused("labelme", path.parent, tmp_path / "ds", "f.json: " + message)


def test_size_and_count_limits(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"shapes": [{"label": "bone", "points": [[i, i] for i in range(50)]}]}))
    with pytest.raises(EndoSpineError, match=r"f.json: larger than 100 bytes; too large for a Labelme file"):
        load_json_limited(path, "Labelme file", limit=100)
    monkeypatch.setattr(pairs, "MAX_JSON_CONTAINERS", 20)
    with pytest.raises(EndoSpineError, match=r"f.json: more than 20 lists and objects"):
        load_json_limited(path, "Labelme file")


def test_a_named_pipe_is_refused_not_waited_on(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "f.json")
    refused("labelme", src, tmp_path / "ds", r"f.json: not a regular file")


def test_cvat_text_files_are_read_with_limits(tmp_path, monkeypatch):
    path = tmp_path / "labelmap.txt"
    path.write_bytes(b"bone:250,50,83::\nb\xe4d:1,2,3::\n")
    with pytest.raises(EndoSpineError, match=r"labelmap.txt: CVAT labelmap.txt is not UTF-8 text"):
        parse_labelmap(path, ImportOptions(classes=LUMBAR))
    monkeypatch.setattr(pairs, "MAX_ANNOTATION_BYTES", 8)
    with pytest.raises(EndoSpineError, match=r"labelmap.txt: larger than 8 bytes"):
        parse_labelmap(path, ImportOptions(classes=LUMBAR))


# -- file names that are not UTF-8 --------------------------------------------------------------
@pytest.mark.unit
def test_utf8_text_escapes_undecodable_bytes():
    name = os.fsdecode(b"Wirbels\xe4ule_01")
    assert utf8_text(name) == "Wirbels\\xe4ule_01" and safe_name(utf8_text(name)) == "Wirbels_xe4ule_01"
    assert utf8_text("plain ä") == "plain ä"
    utf8_text("\ud800").encode("utf-8")


def test_masks_with_non_utf8_names_import_under_escaped_names(tmp_path):
    src = tmp_path / "src"
    names = [b"Wirbels\xe4ule_01.png", b"ok.png"]
    for n, name in enumerate(names):     # two different images: the same one twice would be imported once
        write_image(src / "images" / os.fsdecode(name), picture(n))
        write_label(src / "masks" / os.fsdecode(name), stripes())
    report = run("masks", src, tmp_path / "ds")
    assert report.images == 2 and any("not valid UTF-8" in n for n in report.notes)
    ds = load_dataset(tmp_path / "ds")      # dataset.yaml holds UTF-8 names only, and loads
    assert sorted(i.clip for i in ds.items) == ["Wirbels\\xe4ule_01", "ok"]
    assert (read_label(tmp_path / "ds" / "labels" / "Wirbels_xe4ule_01.png") == stripes()).all()


def test_cli_prints_non_utf8_paths_without_a_traceback(tmp_path):
    src = tmp_path / os.fsdecode(b"src\xe4")
    labelme_source(src, [{"label": "bone", "points": [[0, 0], [10, 0], [10, 10]]}], name=os.fsdecode(b"f\xff"))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "models.cli", "import", "labelme", str(src), "--out",
                           str(tmp_path / "ds")], capture_output=True, text=True, env=env, cwd=REPO,
                          errors="backslashreplace", timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "not valid UTF-8" in proc.stdout
