"""The display states which class table it uses, and takes the starting visibility from it."""
from __future__ import annotations

from dataclasses import replace

import pytest

from tests.app.fakes import ListSource, gray_frames

pytestmark = pytest.mark.gui


def legacy_model_folder(folder):
    """A folder holding the first shipped model's manifest (tests/data), without its weights."""
    from pathlib import Path

    folder.mkdir(parents=True)
    legacy = Path(__file__).resolve().parents[2] / "data" / "manifest-v1-4class.yaml"
    (folder / "manifest.yaml").write_bytes(legacy.read_bytes())
    return folder


@pytest.fixture
def model_hiding_disc(tmp_path):
    """The first shipped model's 4-class manifest with disc marked `visible: false` (never loaded
    by a worker here)."""
    from models.core.runtime.manifest import load_manifest

    manifest = load_manifest(legacy_model_folder(tmp_path / "legacy"), verify=False)
    table = manifest.classes
    table = replace(table, classes=table.classes[:3] + (replace(table.classes[3], visible=False),))
    replace(manifest, classes=table).write(tmp_path)
    return tmp_path, manifest.name


def test_without_a_model_the_legend_says_default_table(qtbot):
    from app.ui.main_window import MainWindow
    from models.core.classes import default_classes

    table = default_classes()
    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    assert win.panel.table_label.text() == f"classes: default table ({len(table)})"
    assert win.style.visible == table.default_visible
    assert {cid for cid, box in win.panel.tissue_boxes.items() if box.isChecked()} == table.default_visible
    win.close()


def test_seven_classes_seven_toggles_keys_and_a_legend_with_the_roles(qtbot):
    """The default table: a toggle per foreground class in table order with keys 1-6, the nerve
    marked protected (in its own color), the instrument off at the start; keys toggle each."""
    from PyQt6.QtCore import Qt

    from app.ui.main_window import MainWindow
    from models.core.classes import default_classes

    table = default_classes()
    assert len(table) == 7
    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    boxes = win.panel.tissue_boxes
    assert list(boxes) == [c.id for c in table.foreground]
    labels = [boxes[c.id].text() for c in table.foreground]
    assert labels == ["bone   [1]", "ligament   [2]", "disc   [3]", "nerve (protected)   [4]", "fat   [5]",
                      "instrument   [6]"]
    nerve, instrument = boxes[table.id_of("nerve")], boxes[table.id_of("instrument")]
    assert "%02x%02x%02x" % table.classes[table.id_of("nerve")].color in nerve.styleSheet()
    assert "protected" in nerve.toolTip() and "is painted over it" in instrument.toolTip()
    assert nerve.isChecked() and not instrument.isChecked()
    assert table.id_of("instrument") not in win.style.visible
    win.show()                                               # shortcuts act on the active window,
    qtbot.waitUntil(lambda: win.isActiveWindow() and win.focusWidget() is not None)   # once it has focus
    for n, c in enumerate(table.foreground, start=1):       # each key toggles its class, box and style alike
        key = getattr(Qt.Key, f"Key_{n}")
        was = c.id in win.style.visible
        qtbot.keyClick(win, key)
        assert (c.id in win.style.visible) is not was and boxes[c.id].isChecked() is not was
        qtbot.keyClick(win, key)
        assert (c.id in win.style.visible) is was and boxes[c.id].isChecked() is was
    instrument.setChecked(True)                              # the box toggles as the key does
    assert table.id_of("instrument") in win.style.visible
    win.close()


def test_the_models_table_is_stated_and_decides_what_shows(qtbot, model_hiding_disc, tmp_path):
    from PyQt6.QtCore import QSettings

    from app.ai.protocol import WorkerConfig
    from app.ui.main_window import MainWindow

    folder, name = model_hiding_disc
    settings = QSettings(str(tmp_path / "endospine.ini"), QSettings.Format.IniFormat)  # nothing remembered yet
    win = MainWindow(ListSource(gray_frames(2)), WorkerConfig(model_dir=str(folder)), settings=settings)
    qtbot.addWidget(win)
    assert win.panel.table_label.text() == f"classes: model {name} (4)"
    assert win.style.visible == frozenset({1, 2})
    assert win.panel.tissue_boxes[1].isChecked() and not win.panel.tissue_boxes[3].isChecked()
    win.close()
