"""Capture cards and cameras through OpenCV: `capture:N?backend=v4l2&width=1920&height=1080&fps=30&fourcc=MJPG&buffer=1`.

The device delivers at its own rate; read() blocks in the driver until the next frame. Frames
arrive as BGR and leave as RGB; with `raw=1` and a YUV fourcc (UYVY, YUYV, NV12, I420) they arrive
as the card's own bytes, and a frame larger than the source's `view_max` (a 4K card) leaves as a
view scaled plane by plane before its colour conversion, its full-resolution planes kept beside
it (Frame.full; models/core/picture.py), as files do. A driver that converts anyway (a BGR frame
in raw mode) is taken as BGR. Devices are opened through a factory so that tests use fakes
(app.diagnostics.fake_card.FakeCard).

A live device fails in ways a file does not, and read() absorbs them instead of ending:
- unplugged (read fails): the device is released and reopened every `reconnect_every` seconds
  (Timing.card_reconnect_every_s) until it answers again; frames then resume with higher ids,
  no restart needed;
- a read() that hangs in the driver (longer than Timing.card_hang_after(fps)): `signal_note()`
  says so while it lasts (the display polls it, never waits on it); the frame that finally comes
  back is old and is dropped;
- success with the same buffer again (stale): not a new frame, counted and dropped;
- uniform black frames: delivered (the card is live), `blank()` lets the display say NO SOURCE IMAGE;
- a new resolution mid-stream: `size` follows, counted in `format_changes`;
- device timestamps (CAP_PROP_POS_MSEC) that repeat or go backwards: repaired so pts only rises.
Only stop() makes read() return None. The source reports these facts; whether the screen says
NO SIGNAL is decided in the display (app.decide).
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

from models.core.costs import STAGES
from models.core.errors import EndoSpineError
from models.core.optics.capture_settings import BACKENDS, CaptureSettings, configure, opencv_device, to_rgb
from models.core.picture import Planes
from models.core.sources.base import Source
from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame

__all__ = ["BACKENDS", "CaptureSettings", "CaptureSource", "opencv_device", "is_black"]

BLACK_LEVEL = 24      # every sampled pixel at or below this (8-bit) is "no picture" (limited-range black is 16)
SAMPLE_CELLS = 64     # stale/black checks look at about 64x64 pixels, whatever the resolution


def _sample(image: np.ndarray) -> np.ndarray:
    """A strided view of about SAMPLE_CELLS x SAMPLE_CELLS pixels (no copy)."""
    h, w = image.shape[:2]
    return image[::max(1, h // SAMPLE_CELLS), ::max(1, w // SAMPLE_CELLS)]


def is_black(image: np.ndarray) -> bool:
    """Uniform black: the card delivers, but there is no picture (camera head off, wrong input)."""
    return int(_sample(image).max()) <= BLACK_LEVEL


class CaptureSource(Source):
    def __init__(self, settings: CaptureSettings, device_factory: Callable = opencv_device,
                 reconnect_every: float | None = None, timing: Timing = DEFAULT_TIMING):
        """reconnect_every: seconds between reopen attempts (None: timing.card_reconnect_every_s)."""
        super().__init__()
        self.settings = settings
        self.name = f"capture:{settings.index}"
        self.timing = timing
        self._reconnect_every = reconnect_every
        self._factory = device_factory
        self._cap = None
        # fault counters (read by the display's status line and the bench)
        self.losses = 0             # times the device stopped delivering
        self.reconnects = 0         # times it came back
        self.reconnect_attempts = 0
        self.hangs = 0              # reads that blocked longer than hang_after()
        self.stale_frames = 0       # reads that returned the previous buffer again
        self.format_changes = 0     # resolution changes mid-stream
        self.bad_buffers = 0        # raw frames of a byte count that fits no size the driver reports
        self._read_since: float | None = None   # monotonic start of the read() in progress
        self._lost_since: float | None = None
        self._next_attempt = 0.0
        self._last_sample: np.ndarray | None = None
        self._last_ms = 0.0

    @classmethod
    def from_spec(cls, spec: str, device_factory: Callable = opencv_device,
                  defaults: CaptureSettings | None = None, timing: Timing = DEFAULT_TIMING) -> "CaptureSource":
        """defaults: settings for options the spec does not give (an endoscope profile's capture section)."""
        return cls(CaptureSettings.parse(spec, defaults), device_factory, timing=timing)

    @property
    def reconnect_every(self) -> float:
        """Seconds between attempts to reopen a device that stopped answering."""
        return self._reconnect_every if self._reconnect_every is not None else self.timing.card_reconnect_every_s

    def open(self) -> None:
        if not self._connect():
            s = self.settings
            raise EndoSpineError(f"{self.name}: cannot open the capture device (backend {s.backend})")
        self.opened = True

    def hang_after(self) -> float:
        """A read() taking longer than this is a hang, not a slow frame."""
        return self.timing.card_hang_after(self.fps)

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            if self._cap is None and not self._reconnect():
                continue
            started = self._read_since = time.monotonic()
            ok, bgr = self._cap.read()
            self._read_since = None
            arrived = time.monotonic()  # the frame's capture time: its conversions below count in its latency
            if self._stop.is_set():
                return None
            if not ok or bgr is None:
                self._lose()
                continue
            if time.monotonic() - started > self.hang_after():
                self.hangs += 1  # what a hung driver finally hands back is old: not shown as live
                continue
            fmt = self.settings.raw_format
            planes = None
            if fmt is not None and not (bgr.ndim == 3 and bgr.shape[2] in (3, 4)):  # else the driver converted
                planes = self._raw_planes(fmt, bgr)
                if planes is None:
                    continue
            ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            if self._is_stale(planes.data if planes is not None else bgr, ms):
                self.stale_frames += 1
                continue
            pts = self._rising_pts(ms / 1000.0 if ms > 0 else None, invent_first=False)
            if planes is None:
                h, w = bgr.shape[:2]
                if (w, h) != self.size:
                    self.format_changes += 1
                    self.size = (w, h)
            with STAGES.measure("convert"):
                if planes is None:
                    planes = Planes("rgb24", to_rgb(bgr), self.size)
                image, full = planes.picture(self.view_max)
            return self._frame(image, pts, full if self.full_planes else None, arrived)
        return None

    def signal_note(self) -> str:
        if self._cap is None and self._lost_since is not None:
            return (f"{self.name}: no device for {time.monotonic() - self._lost_since:.0f} s, "
                    f"reconnecting every {self.reconnect_every:g} s (attempt {self.reconnect_attempts})")
        since = self._read_since
        if since is not None and time.monotonic() - since > self.hang_after():
            return f"{self.name}: the capture driver has not answered for {time.monotonic() - since:.1f} s"
        if self.stale_frames and self._last_sample is not None:
            return f"{self.name}: the card repeats the same picture ({self.stale_frames} repeated frames)"
        return ""

    def blank(self, image: np.ndarray) -> bool:
        return is_black(image)

    def close(self) -> None:
        super().close()
        self._release()

    # -- internals (capture thread) ---------------------------------------------------------
    def _connect(self) -> bool:
        self.reconnect_attempts += self._lost_since is not None
        cap = self._factory(self.settings)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return False
        configure(cap, self.settings)
        self._cap = cap
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        return True

    def _raw_planes(self, fmt: str, buffer: np.ndarray) -> Planes | None:
        """The card's raw bytes of `fmt` as planes of the negotiated size, or of the size the
        driver reports now (a new resolution); None for a buffer that fits neither (counted in
        bad_buffers)."""
        try:
            return Planes.from_buffer(fmt, buffer, self.size)
        except ValueError:
            size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            try:
                planes = Planes.from_buffer(fmt, buffer, size) if size != self.size else None
            except ValueError:
                planes = None
            if planes is None:
                self.bad_buffers += 1
                return None
            self.format_changes += 1
            self.size = size
            return planes

    def _lose(self) -> None:
        self._release()
        self.losses += 1
        self._lost_since = self._next_attempt = time.monotonic()
        self._last_sample = None

    def _reconnect(self) -> bool:
        """One attempt when it is due (waits for it, interruptibly); True once the device is back."""
        if not self._wait_until(self._next_attempt):
            return False
        self._next_attempt = time.monotonic() + self.reconnect_every
        if not self._connect():
            return False
        self.reconnects += 1
        self._lost_since = None
        return True

    def _is_stale(self, bgr: np.ndarray, ms: float) -> bool:
        """The same pixels as the last frame (on a ~64x64 sample) and no new device timestamp.

        A camera's sensor noise changes every frame; identical samples mean the driver handed
        back an old buffer. A static digital picture is told apart by its advancing timestamp
        where the device gives one. Black frames are all alike and never count as stale."""
        if is_black(bgr):
            return False
        sample = _sample(bgr)
        same = (self._last_sample is not None and self._last_sample.shape == sample.shape
                and np.array_equal(self._last_sample, sample))
        if same and not (ms > 0 and ms != self._last_ms):
            return True
        self._last_sample = sample.copy()
        self._last_ms = ms
        return False

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
