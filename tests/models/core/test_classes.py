from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.core.classes import MIN_PROTECT_DELTA_E, ClassInfo, ClassTable, default_classes, delta_e
from models.core.errors import EndoSpineError
from models.core.paths import default_class_table
from models.core.types import ClassId
from models.core.yamlio import dump_yaml


@pytest.mark.unit
def test_default_table_matches_class_ids():
    table = default_classes()
    assert table.names == ["background", "bone", "ligament", "disc", "nerve", "fat", "instrument"]
    for cid in ClassId:
        if cid is ClassId.IGNORE:
            assert table.ignore_index == cid
        else:
            assert table.classes[cid].name == cid.name.lower()
    assert len(table) == len(ClassId) - 1      # every class has its ClassId
    assert [c.name for c in table.foreground] == table.names[1:]


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
    assert table.default_visible == frozenset({1, 2, 3, 4, 5})   # all but the background and the instrument
    assert table.origin == "default table"
    assert ClassTable.load(default_class_table()).origin == str(default_class_table())
    assert ClassTable.load(default_class_table()) == table   # the origin is not part of the table


@pytest.mark.unit
def test_manifest_round_trip_keeps_visible_and_old_manifests_load(tmp_path):
    from dataclasses import replace

    from models.core.runtime.manifest import MANIFEST, load_manifest

    legacy = _legacy_model(tmp_path / "legacy")
    assert "visible" not in (legacy / MANIFEST).read_text()   # written before `visible` existed
    old = load_manifest(legacy, verify=False)
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
    disc = table.id_of("disc")
    table = replace(table, classes=tuple(replace(c, visible=False) if c.id == disc else c for c in table.classes))
    paddle.seed(0)
    net = build_model("liteseg-cpu", len(table))
    net.eval()
    write_model_folder(net, "liteseg-cpu", table, Preprocess((128, 128)), tmp_path, notice="test")
    written = load_manifest(tmp_path)
    assert written.classes == table and written.classes.default_visible == default_classes().default_visible - {disc}
    listed = yaml.safe_load((tmp_path / "manifest.yaml").read_text())["classes"]["classes"]
    assert [c.get("visible") for c in listed] == [c.visible for c in table.classes]
    assert [c.get("protect", False) for c in listed] == [c.protect for c in table.classes]   # the roles too
    assert [c.get("occluder", False) for c in listed] == [c.occluder for c in table.classes]


# -- drawing roles: protect and occluder -------------------------------------------------------------
ROLES = """name: roles
classes:
  - {id: 0, name: background, color: [0, 0, 0]}
  - {id: 1, name: bone, color: [64, 170, 255]}
  - {id: 2, name: nerve, color: [255, 255, 0]%s}
  - {id: 3, name: tool, color: [255, 0, 170]%s}
"""


@pytest.mark.unit
def test_the_shipped_table_marks_the_nerve_protected_and_the_instrument_an_occluder():
    table = default_classes()
    nerve, instrument = table.id_of("nerve"), table.id_of("instrument")
    assert table.protected == frozenset({nerve}) and table.occluders == frozenset({instrument})
    assert nerve in table.default_visible and instrument not in table.default_visible
    yellow = table.classes[nerve].color
    assert yellow[0] >= 230 and yellow[1] >= 230 and yellow[2] <= 40        # the reserved warning color
    for c in table.classes:                                                  # and nobody else is near it
        if c.id != nerve:
            assert delta_e(c.color, yellow) >= MIN_PROTECT_DELTA_E, c.name
    painted = table.foreground
    assert min(delta_e(a.color, b.color) for a in painted for b in painted if a.id < b.id) >= 45


@pytest.mark.unit
@pytest.mark.parametrize("nerve, tool", [("", ""), (", protect: true", ", occluder: true"),
                                         (", protect: false", ", occluder: false"), ("", ", occluder: true")])
def test_roles_round_trip_and_are_written_only_when_true(tmp_path, nerve, tool):
    path = tmp_path / "classes.yaml"
    path.write_text(ROLES % (nerve, tool))
    table = ClassTable.load(path)
    assert table.protected == (frozenset({2}) if "protect: true" in nerve else frozenset())
    assert table.occluders == (frozenset({3}) if "occluder: true" in tool else frozenset())
    assert ClassTable.from_dict(table.to_dict()) == table
    listed = table.to_dict()["classes"]
    assert [("protect" in c, "occluder" in c) for c in listed] == [(c.protect, c.occluder) for c in table.classes]
    assert all(c[k] is True for c in listed for k in ("protect", "occluder") if k in c)


@pytest.mark.unit
def test_tables_without_roles_write_what_they_wrote_before(tmp_path):
    """to_dict of a table that has no roles is exactly the dict written before they existed (so a
    dataset's copy, and a manifest rewritten from its table, stay byte for byte the same)."""
    from models.core.runtime.manifest import MANIFEST, load_manifest
    from models.core.yamlio import parse_yaml

    def before(t):  # ClassTable.to_dict as it was
        return {"name": t.name, "ignore_index": t.ignore_index,
                "classes": [{"id": c.id, "name": c.name, "color": list(c.color), "visible": c.visible}
                            for c in t.classes]}

    kvasir = ClassTable.load(default_class_table().parents[1] / "models" / "configs" / "kvasir-classes.yaml")
    tables = [kvasir, ClassTable((ClassInfo(0, "bg", (0, 0, 0)), ClassInfo(1, "a", (1, 2, 3), visible=False)))]
    legacy = _legacy_model(tmp_path / "legacy")   # the first shipped model's 4-class manifest
    old = load_manifest(legacy, verify=False)
    assert old.classes.names == ["background", "bone", "ligament", "disc"]
    assert not old.classes.protected and not old.classes.occluders
    assert "protect" not in (legacy / MANIFEST).read_text()
    tables.append(old.classes)
    written = parse_yaml((legacy / MANIFEST).read_text())["classes"]
    assert ClassTable.from_dict(written) == old.classes
    for t in tables:
        assert t.to_dict() == before(t)
        assert repr(t.to_dict()) == repr(before(t))                     # same keys, same order
        assert dump_yaml(t.to_dict()) == dump_yaml(before(t))            # same text


@pytest.mark.unit
@pytest.mark.parametrize("nerve, tool, problem", [
    (", protect: 1", "", "protect must be true or false"),
    ("", ", occluder: yes please", "occluder must be true or false"),
    (", protect: true, occluder: true", "", "exclude each other"),
    (", protect: true, visible: false", "", "must be visible"),
    (", protected: true", "", "unknown key 'protected'"),          # a misspelt role is refused, not ignored
    ("", ", occluders: true", "unknown key 'occluders'"),
])
def test_bad_roles_are_one_line_naming_the_file(tmp_path, nerve, tool, problem):
    path = tmp_path / "classes.yaml"
    path.write_text(ROLES % (nerve, tool))
    with pytest.raises(EndoSpineError) as exc:
        ClassTable.load(path)
    msg = str(exc.value)
    assert str(path) in msg and problem in msg and "\n" not in msg


@pytest.mark.unit
def test_the_background_cannot_take_a_role():
    for role in ("protect", "occluder"):
        with pytest.raises(EndoSpineError, match=f"background .*cannot be {role}"):
            ClassTable.from_dict({"classes": [{"id": 0, "name": "bg", "color": [0, 0, 0], role: True},
                                              {"id": 1, "name": "a", "color": [9, 9, 9]}]})


@pytest.mark.unit
@pytest.mark.parametrize("other", [[255, 255, 0], [255, 220, 0], [200, 255, 0], [255, 240, 60]])
def test_a_protected_color_is_reserved(other):
    """No other class may come near the protected class's color: the error names both classes."""
    data = {"classes": [{"id": 0, "name": "background", "color": [0, 0, 0]},
                        {"id": 1, "name": "nerve", "color": [255, 255, 0], "protect": True},
                        {"id": 2, "name": "fat", "color": other}]}
    with pytest.raises(EndoSpineError) as exc:
        ClassTable.from_dict(data, source="t.yaml")
    msg = str(exc.value)
    assert "t.yaml" in msg and "'nerve' is protected" in msg and "'fat'" in msg and "\n" not in msg
    data["classes"][2]["color"] = [0, 235, 235]                    # clearly apart: fine
    assert ClassTable.from_dict(data).protected == frozenset({1})
    data["classes"][1]["protect"] = False                          # unprotected classes may be alike
    data["classes"][2]["color"] = other
    assert not ClassTable.from_dict(data).protected


@pytest.mark.unit
def test_delta_e():
    assert delta_e((10, 20, 30), (10, 20, 30)) == 0
    assert delta_e((0, 0, 0), (255, 255, 255)) == pytest.approx(100, abs=0.1)
    assert delta_e((255, 255, 0), (255, 160, 0)) > MIN_PROTECT_DELTA_E > delta_e((255, 255, 0), (255, 200, 0))


def _legacy_model(folder: Path) -> Path:
    """A folder holding the first shipped model's manifest (tests/data), without its weights."""
    folder.mkdir(parents=True)
    legacy = Path(__file__).resolve().parents[2] / "data" / "manifest-v1-4class.yaml"
    (folder / "manifest.yaml").write_bytes(legacy.read_bytes())
    return folder
