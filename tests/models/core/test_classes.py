from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import ClassInfo, ClassTable, default_classes
from models.core.errors import EndoSpineError
from models.core.paths import default_class_table
from models.core.types import ClassId


@pytest.mark.unit
def test_default_table_matches_class_ids():
    table = default_classes()
    assert table.names == ["background", "bone", "ligament", "disc"]
    for cid in ClassId:
        if cid is ClassId.IGNORE:
            assert table.ignore_index == cid
        else:
            assert table.classes[cid].name == cid.name.lower()
    assert [c.name for c in table.foreground] == ["bone", "ligament", "disc"]


@pytest.mark.unit
def test_color_lut():
    table = default_classes()
    lut = table.color_lut(ignore_color=(1, 2, 3))
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[1]) == table.classes[1].color
    assert tuple(lut[255]) == (1, 2, 3) and tuple(lut[77]) == (1, 2, 3)


@pytest.mark.unit
def test_round_trip_and_other_tables():
    polyp = ClassTable((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "polyp", (255, 0, 0))), name="kvasir")
    assert ClassTable.from_dict(polyp.to_dict()) == polyp
    assert polyp.id_of("polyp") == 1


@pytest.mark.unit
@pytest.mark.parametrize("text, problem", [
    ("classes: [{id: 1, name: a, color: [0, 0, 0]}]", "ids must be 0"),
    ("classes: [{id: 0, name: a, color: [0, 0, 0]}, {id: 1, name: a, color: [0, 0, 0]}]", "unique"),
    ("classes: [{id: 0, name: a, color: [0, 0, 300]}]", "color"),
    ("classes: [{id: 0, name: a}]", "color"),
    ("just a string", "not a valid class table"),
    ("classes: [{id: 0, name: a, color: [0,0,0]}]\nignore_index: 0", "ignore_index"),
    ("{{{{", "cannot read"),
])
def test_bad_tables_name_the_file(tmp_path, text, problem):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(EndoSpineError) as exc:
        ClassTable.load(path)
    msg = str(exc.value)
    assert str(path) in msg and problem in msg and "\n" not in msg


@pytest.mark.unit
def test_missing_table(tmp_path):
    with pytest.raises(EndoSpineError, match="not found"):
        ClassTable.load(tmp_path / "nope.yaml")


# -- default visibility ----------------------------------------------------------------------------
TABLE = """name: two-tissues
classes:
  - {id: 0, name: background, color: [0, 0, 0]}
  - {id: 1, name: nerve, color: [255, 255, 0]%s}
  - {id: 2, name: fat, color: [255, 200, 0]%s}
"""


@pytest.mark.unit
@pytest.mark.parametrize("nerve, fat, shown", [
    ("", "", {1, 2}),                                  # tables written before `visible`: every tissue shows
    (", visible: true", ", visible: false", {1}),
    (", visible: false", "", {2}),
    (", visible: false", ", visible: false", set()),
])
def test_visible_decides_the_default_visible_classes(tmp_path, nerve, fat, shown):
    path = tmp_path / "classes.yaml"
    path.write_text(TABLE % (nerve, fat))
    table = ClassTable.load(path)
    assert table.default_visible == frozenset(shown) and isinstance(table.default_visible, frozenset)
    assert ClassTable.from_dict(table.to_dict()) == table
    assert [c["visible"] for c in table.to_dict()["classes"]][1:] == [1 in shown, 2 in shown]


@pytest.mark.unit
def test_the_background_is_never_shown_and_visible_must_be_a_boolean(tmp_path):
    table = ClassTable.from_dict({"classes": [{"id": 0, "name": "bg", "color": [0, 0, 0], "visible": True},
                                              {"id": 1, "name": "a", "color": [9, 9, 9]}]})
    assert table.default_visible == frozenset({1})
    path = tmp_path / "classes.yaml"
    path.write_text(TABLE % (", visible: 1", ""))
    with pytest.raises(EndoSpineError) as exc:
        ClassTable.load(path)
    assert str(path) in str(exc.value) and "visible must be true or false" in str(exc.value)


@pytest.mark.unit
def test_the_shipped_table_says_where_it_comes_from():
    table = default_classes()
    assert table.default_visible == frozenset({1, 2, 3})
    assert table.origin == "default table"
    assert ClassTable.load(default_class_table()).origin == str(default_class_table())
    assert ClassTable.load(default_class_table()) == table   # the origin is not part of the table


@pytest.mark.unit
def test_manifest_round_trip_keeps_visible_and_old_manifests_load(tmp_path):
    from dataclasses import replace

    from models.core.paths import shipped_model
    from models.core.runtime.manifest import MANIFEST, load_manifest

    shipped = shipped_model() / MANIFEST
    if not shipped.is_file():
        pytest.skip("no shipped model")
    assert "visible" not in shipped.read_text()               # written before `visible` existed
    old = load_manifest(shipped_model(), verify=False)
    assert old.classes.default_visible == frozenset({1, 2, 3})
    hidden = replace(old.classes, classes=old.classes.classes[:3] + (replace(old.classes.classes[3], visible=False),))
    folder = tmp_path / "model"
    folder.mkdir()
    replace(old, classes=hidden).write(folder)
    assert "visible: false" in (folder / MANIFEST).read_text()
    again = load_manifest(folder, verify=False)
    assert again.classes == hidden and again.classes.default_visible == frozenset({1, 2})


@pytest.mark.slow
def test_export_writes_visible_into_the_manifest(tmp_path):
    from dataclasses import replace

    import yaml

    from models.core.runtime.manifest import load_manifest
    from models.core.runtime.preprocess import Preprocess
    from models.export import write_model_folder
    from models.nets import build_model
    from models.nets.layers import paddle

    table = default_classes()
    table = replace(table, classes=table.classes[:3] + (replace(table.classes[3], visible=False),))
    paddle.seed(0)
    net = build_model("liteseg-cpu", len(table))
    net.eval()
    write_model_folder(net, "liteseg-cpu", table, Preprocess((128, 128)), tmp_path, notice="test")
    written = load_manifest(tmp_path)
    assert written.classes == table and written.classes.default_visible == frozenset({1, 2})
    listed = yaml.safe_load((tmp_path / "manifest.yaml").read_text())["classes"]["classes"]
    assert [c.get("visible") for c in listed] == [True, True, True, False]
