"""The window and the trust gate: the legend says how unsure pixels look, or that the model has no
gate; an unsure scene takes the overlay down and says so in the badge."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.app.fakes import ListSource, gray_frames
from tests.app.ui.test_class_table_display import legacy_model_folder

pytestmark = pytest.mark.gui


@pytest.fixture
def gated_model(tmp_path):
    """The legacy manifest with the default 7-class table (the nerve protected) and a gate section
    (never loaded by a worker here)."""
    from models.core.classes import default_classes
    from models.core.runtime.manifest import load_manifest

    manifest = load_manifest(legacy_model_folder(tmp_path / "legacy"), verify=False)
    folder = tmp_path / "gated"
    folder.mkdir()
    replace(manifest, classes=default_classes(), gate={"kind": "test", "threshold": 1.0}).write(folder)
    return folder


def test_a_gated_model_explains_unsure_pixels_in_the_legend(qtbot, gated_model):
    from app.ai.protocol import WorkerConfig
    from app.ui.main_window import MainWindow

    win = MainWindow(ListSource(gray_frames(2)), WorkerConfig(model_dir=str(gated_model)))
    qtbot.addWidget(win)
    assert win.gated is True
    assert win.panel.gate_label.text() == "hatched/dashed = AI unsure (nerve always shown)"
    assert not win.panel.gate_label.isHidden()
    win._update_status()
    assert "trust gate" not in win.status_label.text()
    win.close()


def test_a_model_without_a_gate_says_so_in_the_legend_and_the_status_bar(qtbot, tmp_path):
    from app.ai.protocol import WorkerConfig
    from app.ui.main_window import MainWindow

    win = MainWindow(ListSource(gray_frames(2)), WorkerConfig(model_dir=str(legacy_model_folder(tmp_path / "m"))))
    qtbot.addWidget(win)
    assert win.gated is False
    text = "no trust gate: model exported before gates; re-export"
    assert win.panel.gate_label.text() == text and not win.panel.gate_label.isHidden()
    win._update_status()
    assert text in win.status_label.text()
    win.close()


def test_without_a_model_nothing_is_said_about_a_gate(qtbot, tmp_path):
    from app.ai.protocol import WorkerConfig
    from app.compose import gate_of
    from app.ui.controls import gate_note
    from app.ui.main_window import MainWindow
    from models.core.classes import default_classes

    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    assert win.gated is None and win.panel.gate_label.text() == "" and win.panel.gate_label.isHidden()
    win._update_status()
    assert "trust gate" not in win.status_label.text()
    win.close()
    assert gate_of(WorkerConfig(model_dir=str(tmp_path))) is None      # no manifest: the AI says why
    four = replace(default_classes(), classes=default_classes().classes[:4])  # a table with no protected class
    assert gate_note(four, True) == "dashed = AI unsure (fill: left out)"


def test_an_unsure_scene_takes_the_overlay_down_with_its_badge(qtbot):
    from app.ai.supervisor import AIState
    from app.decide import AI_UNSURE, AIFacts, Screen, overlay_for
    from app.ui.main_window import MainWindow
    from models.core.types import Frame, Result

    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    win.show()
    frame = Frame(3, 10.0, None, np.zeros((48, 64, 3), np.uint8))
    win.view.set_frame(frame.image, frame.frame_id, frame.capture_time)
    mask = np.full((24, 32), 1, np.uint8)
    screen = Screen(frame=frame, shown_last=3)
    for unsure, visible, badge in ((False, True, ""), (True, False, AI_UNSURE), (False, True, "")):
        result = Result(3, mask, "m", capture_time=10.0, score=2.0 if unsure else 0.1, unsure=unsure)
        overlay, screen = overlay_for(screen, AIFacts(AIState.RUNNING, result), review=False, overlay_on=True)
        win._paint_overlay(overlay)
        assert win.view.overlay_visible is visible and win.view.badge == badge
        assert (win._drawn_result() is result) is visible         # snapshots and recordings follow
        assert (win._withheld is result) is not visible           # the recording's CSV gets its gate figures
    win.close()


def test_the_recording_gets_the_result_the_gate_withheld(qtbot):
    """A recorded frame shown as AI UNSURE carries the withheld result's gate figures (app.recorder)."""
    from app.ai.supervisor import AIState
    from app.decide import AIFacts, Screen, SourceFacts, Tick, decide
    from app.ui.main_window import MainWindow
    from models.core.types import Frame, Result

    class Recorded:
        def __init__(self):
            self.offers = []

        def offer(self, frame, result, style, withheld=None):
            self.offers.append((frame.frame_id, result, withheld))

        def stop(self):
            pass

    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    win.recorder = rec = Recorded()
    screen = Screen(shown_last=-1)
    results = [Result(i, np.ones((4, 4), np.uint8), "m", capture_time=10.0 + i, score=float(i), unsure=i == 1)
               for i in range(3)]
    for i, r in enumerate(results):
        d = decide(Tick(10.0 + i, Frame(i, 10.0 + i, None, np.zeros((8, 8, 3), np.uint8)), SourceFacts("s"),
                        AIFacts(AIState.RUNNING, r)), screen)
        screen = d.screen
        win._paint(d, 10.0 + i)
    assert rec.offers == [(0, results[0], None), (1, None, results[1]), (2, results[2], None)]
    win.recorder = None
    win.close()
