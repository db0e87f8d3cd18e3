from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import ClassInfo, ClassTable, default_classes
from models.core.errors import EndoSpineError
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
