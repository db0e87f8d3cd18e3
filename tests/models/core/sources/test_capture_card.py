"""capture:N through a fake OpenCV device: settings applied, BGR -> RGB, clean errors."""
from __future__ import annotations

import av
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


class RawDevice(FakeDevice):
    """A 4:2:2 card in raw mode: each read hands over the UYVY bytes as one row, as V4L2 does with
    CAP_PROP_CONVERT_RGB off, unless the driver ignores that and converts (`converts`)."""

    def __init__(self, settings, picture, converts=False):
        super().__init__(settings, frames=100)
        self.picture, self.converts = picture, converts

    def get(self, prop):
        h, w = self.picture.shape[:2]
        return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h}.get(prop, self.props.get(prop, 0))

    def read(self):
        self.frames -= 1
        rgb = self.picture.copy()
        rgb[:, :2] = (2 * self.frames, 0, 200)  # new pixels every frame, as a camera's noise gives
        if self.converts:
            return True, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        yuyv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuyv422").to_ndarray()
        h, w = rgb.shape[:2]
        return True, yuyv.reshape(h, w // 2, 4)[..., [1, 0, 3, 2]].reshape(1, -1)  # UYVY


@pytest.mark.parametrize("converts", [False, True])
def test_a_raw_4_2_2_card_larger_than_the_view(converts):
    y, x = np.mgrid[0:96, 0:128]
    picture = np.stack([x * 2, y * 2, np.full_like(x, 90)], -1).astype(np.uint8)
    devices = []

    def factory(settings):
        devices.append(RawDevice(settings, picture, converts))
        return devices[-1]

    src = CaptureSource.from_spec("capture:0?width=128&height=96&fourcc=UYVY&raw=1", factory)
    src.view_max = (64, 64)
    src.open()
    frame = src.read()
    assert devices[0].props[cv2.CAP_PROP_CONVERT_RGB] == 0
    assert frame.image.shape == (48, 64, 3) and frame.full_size == (128, 96)
    assert frame.full.fmt == ("rgb24" if converts else "uyvy422")
    reference = cv2.resize(picture, (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.image[:, 1:].astype(int) - reference[:, 1:]).mean() < 3  # column 0: the device's own
    assert np.abs(frame.full_rgb()[:, 2:].astype(int) - picture[:, 2:]).mean() < 3
    src.view_max = None  # at its own size: no planes kept
    frame = src.read()
    assert frame.full is None and frame.image.shape == (96, 128, 3)
    src.close()


@pytest.mark.unit
def test_raw_needs_a_yuv_fourcc_and_round_trips_through_the_spec():
    with pytest.raises(EndoSpineError, match="raw needs a YUV fourcc"):
        CaptureSettings.parse("capture:0?fourcc=MJPG&raw=1")
    with pytest.raises(EndoSpineError, match="raw must be 0 or 1"):
        CaptureSettings.parse("capture:0?fourcc=UYVY&raw=yes")
    s = CaptureSettings.parse("capture:2?fourcc=NV12&raw=1")
    assert s.raw and s.raw_format == "nv12" and CaptureSettings.parse(s.spec()) == s
    assert "raw" not in CaptureSettings.parse("capture:2?fourcc=NV12").spec()


def test_a_cards_capture_time_is_when_the_driver_handed_the_frame_over(monkeypatch):
    """The conversions after the driver's read count in the frame's latency: its capture time is
    taken before them (a slowed colour conversion shows in now - capture_time)."""
    import time

    import models.core.sources.capture_card as card

    convert = card.to_rgb

    def slowly(bgr):
        time.sleep(0.05)
        return convert(bgr)

    monkeypatch.setattr(card, "to_rgb", slowly)
    src = CaptureSource.from_spec("capture:0", FakeDevice)
    src.open()
    frame = src.read()
    assert time.monotonic() - frame.capture_time >= 0.05
    src.close()
