from __future__ import annotations

import av
import numpy as np
import pytest

from tests.app.fakes import ListSource, gray_frames

pytestmark = pytest.mark.gui


def test_window_shows_newest_frames_then_end(qtbot):
    from app.ui.main_window import MainWindow

    frames = gray_frames(20, 64, 48)
    win = MainWindow(ListSource(frames, fps=100, realtime=True))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.pipeline.screen.shown_last == 19, timeout=5000)  # the newest frame reached the screen
    qtbot.waitUntil(lambda: win.view.message == "END OF VIDEO", timeout=5000)
    for _ in range(10):  # it stays ended: the last frame never comes back as if it were live
        qtbot.wait(20)
        assert win.view.message == "END OF VIDEO" and win.frame is None
    win.close()
    assert not win.capture.is_alive()


def test_window_paints_frame_with_aspect_kept(qtbot):
    from app.ui.main_window import MainWindow

    img = np.zeros((100, 200, 3), np.uint8)
    img[:] = (255, 0, 0)
    win = MainWindow(ListSource([img]))
    qtbot.addWidget(win)
    win.resize(800, 800)
    win.show()
    win.view.set_frame(img)
    rect = win.view.video_rect()
    assert rect.width() / rect.height() == pytest.approx(2.0, rel=0.01)
    shot = win.view.grab().toImage()
    center = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    corner = shot.pixelColor(2, 2)
    assert (center.red(), center.green(), center.blue()) == (255, 0, 0)
    assert (corner.red(), corner.green(), corner.blue()) == (0, 0, 0)  # letterbox


def test_no_signal_when_source_fails(qtbot):
    from app.ui.main_window import MainWindow

    win = MainWindow(ListSource([], fail_open="capture:0: no device"))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: "no device" in win.view.detail, timeout=5000)
    assert win.view.message == "NO SIGNAL"
    win.close()


def test_display_choices_are_remembered(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings

    from app.ui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "endospine.ini"), QSettings.Format.IniFormat)
    win = MainWindow(ListSource(gray_frames(3)), settings=settings)
    qtbot.addWidget(win)
    shown = win.style.visible
    win.toggle_class(2)
    win.panel.opacity.setValue(70)
    win.panel.contour_button.setChecked(True)
    win.close()
    again = MainWindow(ListSource(gray_frames(3)), settings=settings)
    qtbot.addWidget(again)
    assert again.style.visible == shown - {2} and again.style.opacity == 0.7 and again.style.mode == "contour"
    assert not again.panel.tissue_boxes[2].isChecked() and again.panel.contour_button.isChecked()
    settings.setValue("overlay/opacity", "not a number")
    assert MainWindow(ListSource(gray_frames(1)), settings=settings).style.opacity == 0.45


def test_remembered_classes_belong_to_their_table_and_the_protected_one_starts_shown(qtbot, tmp_path):
    """Ids mean other classes in another table: what a 4-class model's window remembered ("1,2,3")
    must not hide the 7-class table's nerve and fat. And a protected class starts shown every time."""
    from PyQt6.QtCore import QSettings

    from app.ui.main_window import MainWindow
    from models.core.classes import default_classes

    table = default_classes()
    nerve = table.id_of("nerve")
    settings = QSettings(str(tmp_path / "endospine.ini"), QSettings.Format.IniFormat)
    settings.setValue("overlay/visible", "1,2,3")             # written by a window on another table
    settings.setValue("overlay/classes", "background,bone,ligament,disc")
    settings.setValue("overlay/opacity", 0.6)
    win = MainWindow(ListSource(gray_frames(3)), settings=settings)
    qtbot.addWidget(win)
    assert win.style.visible == table.default_visible and win.style.opacity == 0.6   # opacity still remembered
    settings.remove("overlay/classes")                        # remembered before tables were told apart
    assert MainWindow(ListSource(gray_frames(1)), settings=settings).style.visible == table.default_visible
    win.toggle_class(nerve)                                    # the user hides the nerve for a while ...
    win.toggle_class(table.id_of("fat"))
    assert nerve not in win.style.visible
    win.close()
    again = MainWindow(ListSource(gray_frames(3)), settings=settings)
    qtbot.addWidget(again)
    assert again.style.visible == table.default_visible - {table.id_of("fat")}   # ... it is back next time
    assert again.panel.tissue_boxes[nerve].isChecked()


def test_reopen_with_a_bad_video_keeps_the_window(qtbot, monkeypatch, tmp_path):
    from PyQt6.QtWidgets import QMessageBox

    from app.ui.main_window import MainWindow
    from app.ui.run import _follow_reopen

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    win = MainWindow(ListSource(gray_frames(50, 64, 48), fps=30, realtime=True))
    qtbot.addWidget(win)
    _follow_reopen(win, tmp_path, review=False)
    win.show()
    win.start()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    win.reopen_requested.emit(str(bad), "", "")
    assert shown and "broken.mp4" in shown[0] and "not a readable video" in shown[0]
    assert win.isVisible()
    win.reopen_requested.emit("synthetic:1", str(tmp_path), "")  # a folder that is no model
    assert "manifest.yaml" in shown[1]
    profile = tmp_path / "tower.yaml"
    profile.write_text("format: endospine-profile/1\ncolor: {gains: [1.0, -2.0, 1.0]}\n")
    win.reopen_requested.emit("synthetic:1", "", str(profile))  # File > Open endoscope profile
    assert len(shown) == 3 and "tower.yaml" in shown[2] and "\n" not in shown[2]
    win.close()


def test_open_profile_reopens_with_it(qtbot, tiny_model_dir, tmp_path):
    """File > Open endoscope profile: the new window's inference worker applies the chosen profile,
    and a later model choice keeps it (the tower has not changed)."""
    from PyQt6.QtWidgets import QApplication

    from app.ai.supervisor import worker_config
    from app.ui.main_window import MainWindow
    from app.ui.run import _follow_reopen
    from models.core.optics.profile import ColorSection, default_profile, save_profile

    profile = save_profile(default_profile().updated(color=ColorSection(mode="gains", gains=(1.1, 1.0, 0.9))), tmp_path / "tower.yaml")
    win = MainWindow(ListSource(gray_frames(50, 64, 48), fps=30, realtime=True), worker_config(str(tiny_model_dir)))
    qtbot.addWidget(win)
    _follow_reopen(win, tmp_path, review=False)
    win.reopen_requested.emit("synthetic:1", win.model_dir, str(profile))
    new = QApplication.instance().property("endospine_window")
    qtbot.addWidget(new)
    assert new is not win and new.ai.cfg.settings.profile == str(profile) and new.profile_path == str(profile)
    new.close()


def test_a_source_larger_than_the_view_is_shown_reduced_and_said_so(qtbot, pattern_video):
    from app.compose import open_source_stage
    from app.ui.main_window import MainWindow

    source = open_source_stage(str(pattern_video(width=320, height=240, frames=30)), loop=True, isolated=True,
                               view_max=(160, 160))
    win = MainWindow(source)
    qtbot.addWidget(win)
    win.show()
    win.start()
    try:
        qtbot.waitUntil(lambda: win.frame is not None, timeout=10000)
        # the frame's full planes come only while the window asks for them (recording, snapshot);
        # whether the first frame left the decoder before the window said so is a race, so the
        # source's size is what the status line is checked against
        assert win.frame.image.shape == (120, 160, 3) and source.size == (320, 240)
        win._update_status()
        assert "320x240 shown at 160x120" in win.status_label.text()
    finally:
        win.close()


def test_a_reduced_sources_full_planes_come_only_for_recordings_and_snapshots(qtbot, pattern_video, tmp_path):
    from app.compose import open_source_stage
    from app.ui.main_window import MainWindow
    from models.core.deid import DeidPolicy
    from models.core.imageio import read_image

    source = open_source_stage(str(pattern_video(width=320, height=240, frames=30)), loop=True, isolated=True,
                               view_max=(160, 160))
    win = MainWindow(source, output_dir=tmp_path)
    win.pipeline.deid = DeidPolicy(keep_full_frame=True)  # a test pattern: no field of view to keep
    qtbot.addWidget(win)
    win.show()
    win.start()
    try:
        qtbot.waitUntil(lambda: win.frame is not None and win.frame.frame_id > 5, timeout=10000)
        assert win.frame.full is None and not source.full_planes  # the view alone while nothing needs more
        win.take_snapshot()
        assert source.full_planes  # asked for: the next full-resolution frame is saved
        qtbot.waitUntil(lambda: any((tmp_path / "snapshots").glob("*_raw.png")), timeout=5000)
        raw = read_image(next((tmp_path / "snapshots").glob("*_raw.png")))
        assert raw.shape == (240, 320, 3) and not source.full_planes
        win.toggle_recording()
        assert source.full_planes and win.recorder.source_size == (320, 240)
        qtbot.waitUntil(lambda: win.recorder.written >= 5, timeout=10000)
        win.toggle_recording()
        assert not source.full_planes
        with av.open(str(next((tmp_path / "recordings").glob("*_raw.mp4")))) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 240)
    finally:
        win.close()
