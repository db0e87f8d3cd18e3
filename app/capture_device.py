"""Capture cards and cameras through OpenCV: `capture:N?backend=v4l2&width=1920&height=1080&fps=30&fourcc=MJPG&buffer=1`.

The device delivers at its own rate; read() blocks in the driver until the next frame. Frames
arrive as BGR and leave as RGB. Devices are opened through a factory so that tests use fakes.
"""
from __future__ import annotations

from typing import Callable

import cv2

from models.capture import BACKENDS, CaptureSettings, configure, opencv_device, to_rgb
from models.errors import EndoSpineError
from models.types import Frame

from app.sources_base import Source

__all__ = ["BACKENDS", "CaptureSettings", "CaptureSource", "opencv_device"]


class CaptureSource(Source):
    def __init__(self, settings: CaptureSettings, device_factory: Callable = opencv_device):
        super().__init__()
        self.settings = settings
        self.name = f"capture:{settings.index}"
        self._factory = device_factory
        self._cap = None

    @classmethod
    def from_spec(cls, spec: str, device_factory: Callable = opencv_device,
                  defaults: CaptureSettings | None = None) -> "CaptureSource":
        """defaults: settings for options the spec does not give (an endoscope profile's capture section)."""
        return cls(CaptureSettings.parse(spec, defaults), device_factory)

    def open(self) -> None:
        s = self.settings
        cap = self._factory(s)
        if cap is None or not cap.isOpened():
            raise EndoSpineError(f"{self.name}: cannot open the capture device (backend {s.backend})")
        configure(cap, s)
        self._cap = cap
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.opened = True

    def read(self) -> Frame | None:
        if self._stop.is_set() or self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        return self._frame(to_rgb(bgr), None)

    def close(self) -> None:
        super().close()
        if self._cap is not None:
            self._cap.release()
            self._cap = None

