"""The window's menus and keys: every shortcut a menu shows works, no key is claimed twice, Quit
shows Ctrl+Q, Help > About says the version, the model, its notice, the licences and that
EndoSpine is not a medical device."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from tests.app.fakes import ListSource, gray_frames

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[3]


def _menu_actions(win):
    """(menu title, action) for every entry of every menu of the menu bar, in order."""
    return [(menu.title().replace("&", ""), action) for menu_action in win.menuBar().actions()
            for menu in [menu_action.menu()] if menu is not None
            for action in menu.actions() if not action.isSeparator()]


def _label(action) -> str:
    return action.text().replace("&", "")


def _press(qtbot, win, sequence) -> None:
    combo = sequence[0]
    qtbot.keyClick(win, combo.key(), combo.keyboardModifiers())


def _activate(qtbot, win) -> None:
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)   # window shortcuts act on the active window


def test_every_menu_shortcut_runs_its_action(qtbot, monkeypatch, tmp_path):
    """Each key a menu shows, pressed on the window, runs that entry's slot (the file dialogs are
    stubbed to record that they were asked for; Quit goes last)."""
    from PyQt6.QtWidgets import QFileDialog

    from app.ui.main_window import MainWindow

    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda parent, caption, *a, **k: (asked.append(caption), ("", ""))[1])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, caption, *a, **k: (asked.append(caption), "")[1])
    from app.compose import build_live
    from models.core.deid import DeidPolicy
    from models.core.optics.fov import Circle

    # gray frames have no field of view: a region, so that the de-identified snapshot has one to keep
    source = ListSource(gray_frames(900, 64, 48), fps=30, realtime=True)
    win = MainWindow(build_live(source, deid=DeidPolicy(region=Circle(32, 24, 20))), output_dir=tmp_path)
    qtbot.addWidget(win)
    win.show()
    win.start()
    _activate(qtbot, win)
    qtbot.waitUntil(lambda: win.frame is not None, timeout=5000)   # snapshot and record need a picture
    shown = {  # what each entry's slot changes, read before and after its key
        "Open video...": lambda: asked.count("Open a surgery video"),
        "Open model...": lambda: asked.count("Open an exported model folder"),
        "Open endoscope profile...": lambda: asked.count("Open an endoscope profile"),
        "Snapshot": lambda: len(list((tmp_path / "snapshots").glob("*.png"))),
        "Record": lambda: win.recorder is not None,
        "Quit": win.isVisible,
        "Fullscreen": win.isFullScreen,
        "Overlay on/off": lambda: win.style.enabled,
        "Keyboard shortcuts": lambda: win.info is not None and win.info.isVisible(),
    }
    keyed = [(menu, a) for menu, a in _menu_actions(win) if a.shortcuts()]
    assert {_label(a) for _, a in keyed} == set(shown)        # every entry with a key is checked below
    keyed.sort(key=lambda pair: _label(pair[1]) == "Quit")    # quitting ends the test
    pressed = []
    try:
        for menu, action in keyed:
            for sequence in action.shortcuts():
                before = shown[_label(action)]()
                _press(qtbot, win, sequence)
                qtbot.waitUntil(lambda: shown[_label(action)]() != before, timeout=3000)
                pressed.append(sequence.toString())
                if win.info is not None and win.info.isVisible():   # the Help box took the focus: back
                    win.info.close()
                    _activate(qtbot, win)
    finally:
        win.close()
    assert {"Ctrl+O", "Ctrl+M", "Ctrl+P", "S", "R", "F11", "Space", "O", "F1", "Ctrl+Q"} <= set(pressed)
    assert asked == ["Open a surgery video", "Open an exported model folder", "Open an endoscope profile"]


def test_quit_shows_its_shortcut_and_help_has_about(qtbot):
    from app.ui.main_window import MainWindow

    win = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(win)
    entries = {(menu, _label(a)): a for menu, a in _menu_actions(win)}
    assert entries[("File", "Quit")].shortcut().toString() == "Ctrl+Q"
    assert entries[("File", "Open endoscope profile...")].shortcut().toString() == "Ctrl+P"
    assert ("Help", "About EndoSpine") in entries and ("Help", "Keyboard shortcuts") in entries
    win.close()


def test_no_key_is_claimed_twice_and_the_hidden_keys_work(qtbot, small_video):
    """A key owned twice in one window is ambiguous and Qt fires neither (the Ctrl+P bug: the menu's
    actions were confined to their menu and the keys duplicated as QShortcuts). With a video file:
    every key listed in Help > Keyboard shortcuts once, P pauses."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtGui import QShortcut

    from app.ui.main_window import MainWindow
    from models.core.sources.video import VideoSource

    win = MainWindow(VideoSource(small_video, loop=True))
    qtbot.addWidget(win)
    try:
        assert win.findChildren(QShortcut) == []
        keys = [s.toString() for a in win.actions() for s in a.shortcuts()]
        assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
        assert {a for _, a in _menu_actions(win) if a.shortcuts()} <= set(win.actions())   # menu keys: the window's
        assert all(a.shortcutContext() == Qt.ShortcutContext.WindowShortcut for a in win.actions())
        assert {"P", ".", "Esc", "1", "Ctrl+P", "Ctrl+Q"} <= set(keys)
        win.show()
        win.start()
        _activate(qtbot, win)
        qtbot.waitUntil(lambda: win.frame is not None, timeout=10000)
        qtbot.keyClick(win, Qt.Key.Key_P)
        qtbot.waitUntil(lambda: win.capture.source.paused, timeout=3000)
        win.show_shortcuts()
        listing = win.info.text()
        assert "Ctrl+P: Open endoscope profile" in listing and "Ctrl+Q: Quit" in listing
        assert "Space or O: Overlay on/off" in listing and "P: Play/pause" in listing and "1: Show/hide bone" in listing
        assert not win.info.isModal()       # the video and the window's keys go on while it is open
    finally:
        win.close()


def test_about_states_version_model_notice_licences_and_not_a_medical_device(qtbot, tiny_model_dir):
    from importlib.metadata import version

    from app.ai.supervisor import worker_config
    from app.ui.main_window import MainWindow
    from models.core.runtime.manifest import load_manifest

    win = MainWindow(ListSource(gray_frames(2)), worker_config(str(tiny_model_dir)))
    qtbot.addWidget(win)
    about = dict(((menu, _label(a)), a) for menu, a in _menu_actions(win))[("Help", "About EndoSpine")]
    about.trigger()                                            # the menu entry, as a click would
    box = win.info
    assert box.isVisible() and not box.isModal() and box.windowTitle() == "About EndoSpine"
    text = box.text()
    assert f"EndoSpine {version('endospine')}" in text
    assert load_manifest(tiny_model_dir, verify=False).model_id in text and "untrained test model" in text
    assert "not a medical device" in text and "research and teaching use only" in text
    assert "PyQt6 (Riverbank Computing): GPL v3" in text and "PaddlePaddle: Apache-2.0" in text
    win.close()
    plain = MainWindow(ListSource(gray_frames(2)))
    qtbot.addWidget(plain)
    plain.show_about()
    assert "Model: no model loaded" in plain.info.text() and "not a medical device" in plain.info.text()
    plain.close()


def test_about_text_of_the_shipped_model_carries_its_notice():
    from app.ui.about import about_text
    from models.core.paths import shipped_model

    if not (shipped_model() / "manifest.yaml").is_file():
        pytest.skip("no shipped model")
    text = about_text(str(shipped_model()), "9.9")
    assert text.startswith("EndoSpine 9.9\n") and "Demonstration model" in text and "Not a medical device" in text


def test_the_licences_cover_every_dependency_of_setup_cfg():
    from app.ui.about import THIRD_PARTY

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    required = [re.split(r"[<>=!~;\[ ]", line.strip())[0] for line in cfg["options"]["install_requires"].splitlines()
                if line.strip() and not line.strip().startswith("#")]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    assert required and {norm(r) for r in required} <= {norm(dist) for dist, _, _ in THIRD_PARTY}
