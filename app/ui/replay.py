"""Replay controls for video files: play/pause, step, seek bar with time, speed, loop.

The bar talks to the source through its thread-safe control methods and reads its position;
it never touches the decoder itself.
"""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from models.core.sources.replay import ReplaySource

SPEED_CHOICES = ("0.25x", "0.5x", "1x", "2x", "4x")


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m):02d}:{s:05.2f}"


class ReplayBar(QWidget):
    def __init__(self, source: ReplaySource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("QWidget { background: #15171a; color: #f2f2f2; font-size: 14pt; } "
                           "QPushButton { padding: 6px 14px; }")
        row = QHBoxLayout(self)
        self.play = QPushButton("Pause", self)
        self.play.clicked.connect(self.toggle_pause)
        self.step_button = QPushButton("Step", self)
        self.step_button.clicked.connect(self.step)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, int((source.duration or 0) * 1000))
        self.slider.sliderReleased.connect(lambda: self.seek(self.slider.value() / 1000))
        self.time = QLabel(self)
        self.speed = QComboBox(self)
        self.speed.addItems(SPEED_CHOICES)
        self.speed.setCurrentText("1x")
        self.speed.currentTextChanged.connect(lambda t: source.set_speed(float(t[:-1])))
        self.loop = QCheckBox("Loop", self)
        self.loop.setChecked(source.loop)
        self.loop.toggled.connect(lambda on: setattr(source, "loop", on))
        for w in (self.play, self.step_button):
            row.addWidget(w)
        row.addWidget(self.slider, 1)
        for w in (self.time, self.speed, self.loop):
            row.addWidget(w)
        self.refresh()

    def toggle_pause(self) -> None:
        paused = not self.source.paused
        self.source.pause(paused)
        self.play.setText("Play" if paused else "Pause")

    def step(self) -> None:
        if not self.source.paused:
            self.toggle_pause()
        self.source.step(1)

    def seek(self, seconds: float) -> None:
        self.source.seek(seconds)

    def refresh(self) -> None:
        """Follow the source's position (called from the window's status timer)."""
        if not self.slider.isSliderDown():
            self.slider.setValue(int(self.source.position * 1000))
        self.time.setText(f"{_clock(self.source.position)} / {_clock(self.source.duration or 0)}")
        self.play.setText("Play" if self.source.paused else "Pause")
