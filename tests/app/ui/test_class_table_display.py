"""The display states which class table it uses, and takes the starting visibility from it."""
from __future__ import annotations

from dataclasses import replace

import pytest

from tests.app.fakes import ListSource, gray_frames

pytestmark = pytest.mark.gui


@pytest.fixture
def model_hiding_disc(tmp_path):
    """The shipped model's manifest with disc marked `visible: false` (never loaded by a worker here)."""
    from models.core.paths import shipped_model
    from models.core.runtime.manifest import load_manifest

    if not (shipped_model() / "manifest.yaml").is_file():
        pytest.skip("no shipped model")
    manifest = load_manifest(shipped_model(), verify=False)
    table = manifest.classes
    table = replace(table, classes=table.classes[:3] + (replace(table.classes[3], visible=False),))
    replace(manifest, classes=table).write(tmp_path)
    return tmp_path, manifest.name


def test_without_a_model_the_legend_says_default_table(qtbot):
    from app.ui.main_window import MainWindow

    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    assert win.panel.table_label.text() == "classes: default table (4)"
    assert win.style.visible == frozenset({1, 2, 3})
    assert all(box.isChecked() for box in win.panel.tissue_boxes.values())
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
