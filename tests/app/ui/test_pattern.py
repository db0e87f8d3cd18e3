"""The latency pattern window draws codes the calibration tool reads back, with the current time."""
from __future__ import annotations

import time

import numpy as np
import pytest

from models.core.optics.loopback import decode

pytestmark = pytest.mark.gui


def _grab(widget) -> np.ndarray:
    from PyQt6.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    return np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8).reshape(h, image.bytesPerLine())[
        :, :w * 3].reshape(h, w, 3).copy()


def test_each_paint_encodes_a_new_counter_and_the_monotonic_time(qtbot):
    from app.ui.pattern import PatternWindow

    window = PatternWindow()
    qtbot.addWidget(window)
    window.resize(720, 450)
    window.show()
    qtbot.waitExposed(window)
    before = time.monotonic() * 1000
    first = decode(_grab(window))
    second = decode(_grab(window))
    after = time.monotonic() * 1000
    assert first is not None and second is not None
    assert second.counter > first.counter
    assert before - 1 <= first.time_ms <= second.time_ms <= after + 1
