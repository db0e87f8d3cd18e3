"""capture:N through a fake OpenCV device: settings applied, BGR -> RGB, clean errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.sources.capture_card import CaptureSettings, CaptureSource


class FakeDevice:
    def __init__(self, settings, frames=3, opened=True):
        self.props = {}
        self.frames = frames
        self.opened = opened
        self.released = False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 8, cv2.CAP_PROP_FRAME_HEIGHT: 6}.get(prop, self.props.get(prop, 0))

    def read(self):
        if self.frames == 0:
            return False, None
        self.frames -= 1
        bgr = np.zeros((6, 8, 3), np.uint8)
        bgr[..., 0] = 255  # blue in BGR
        bgr[1:, :, 1] = 40 + self.frames  # new pixels every frame, as a camera's noise gives
        return True, bgr

    def release(self):
        self.released = True


@pytest.mark.unit
def test_settings_parse():
    s = CaptureSettings.parse("capture:1?backend=v4l2&width=1920&height=1080&fps=60&fourcc=MJPG&buffer=2")
    assert (s.index, s.backend, s.width, s.height, s.fps, s.fourcc, s.buffer) == (1, "v4l2", 1920, 1080, 60.0, "MJPG", 2)
    assert CaptureSettings.parse("capture:0").buffer == 1


@pytest.mark.unit
@pytest.mark.parametrize("spec, problem", [("capture:x", "expected capture:N"), ("capture:0?backend=vfw", "backend"),
                                           ("capture:0?fourcc=MJPEG", "fourcc"), ("capture:0?width=wide", "whole"),
                                           ("capture:0?zoom=2", "unknown option")])
def test_bad_specs(spec, problem):
    with pytest.raises(EndoSpineError, match=problem):
        CaptureSettings.parse(spec)


def test_reads_rgb_and_applies_settings():
    devices = []

    def factory(settings):
        devices.append(FakeDevice(settings))
        return devices[-1]

    src = CaptureSource.from_spec("capture:0?width=8&height=6&fps=50&fourcc=YUYV", factory)
    src.open()
    frame = src.read()
    assert frame.image.shape == (6, 8, 3) and tuple(frame.image[0, 0]) == (0, 0, 255)  # blue, as RGB
    assert frame.pts is None and src.size == (8, 6) and src.fps == 50
    assert devices[0].props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"YUYV")
    assert devices[0].props[cv2.CAP_PROP_BUFFERSIZE] == 1
    src.read(), src.read()
    assert src.losses == 0
    frame = src.read()  # the device stopped delivering: released, reopened, frames go on
    assert frame.frame_id == 3 and src.losses == 1 and src.reconnects == 1
    assert devices[0].released and len(devices) == 2
    src.close()
    assert devices[1].released


def test_device_that_does_not_open():
    src = CaptureSource.from_spec("capture:7", lambda s: FakeDevice(s, opened=False))
    with pytest.raises(EndoSpineError, match="capture:7: cannot open"):
        src.open()


@pytest.mark.unit
def test_hang_and_reconnect_follow_the_timing_rules():
    from models.core.timing import Timing

    src = CaptureSource(CaptureSettings(0), FakeDevice)
    src.fps = 30.0
    assert src.hang_after() == 0.5 and src.reconnect_every == 1.0        # the defaults
    src.fps = 5.0
    assert src.hang_after() == pytest.approx(0.8)                        # 4 frame intervals
    src.timing = Timing(card_hang_min_s=2.0, card_reconnect_every_s=3.0)  # a profile's rules, set by compose
    assert src.hang_after() == 2.0 and src.reconnect_every == 3.0
    assert CaptureSource(CaptureSettings(0), FakeDevice, reconnect_every=0.2).reconnect_every == 0.2
    assert CaptureSource.from_spec("capture:1", FakeDevice, timing=src.timing).hang_after() == 2.0
