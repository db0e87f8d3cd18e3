"""Capture cards and cameras through OpenCV: `capture:N?backend=v4l2&width=1920&height=1080&fps=30&fourcc=MJPG&buffer=1`.

The device delivers at its own rate; read() blocks in the driver until the next frame. Frames
arrive as BGR and leave as RGB. Devices are opened through a factory so that tests use fakes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl

import cv2
import numpy as np

from models.errors import EndoSpineError
from models.types import Frame

from app.sources_base import Source

BACKENDS = {"any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "dshow": cv2.CAP_DSHOW, "msmf": cv2.CAP_MSMF,
            "avfoundation": cv2.CAP_AVFOUNDATION, "gstreamer": cv2.CAP_GSTREAMER, "ffmpeg": cv2.CAP_FFMPEG}


@dataclass(frozen=True)
class CaptureSettings:
    index: int
    backend: str = "any"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None      # e.g. MJPG, YUYV
    buffer: int | None = 1         # driver-side queue: 1 keeps latency low

    @classmethod
    def parse(cls, spec: str) -> "CaptureSettings":
        head, _, query = spec.partition("?")
        try:
            index = int(head.split(":", 1)[1])
            opts = dict(parse_qsl(query, strict_parsing=bool(query)))
        except (ValueError, IndexError):
            raise EndoSpineError(f"{spec}: expected capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=]") from None
        unknown = set(opts) - {"backend", "width", "height", "fps", "fourcc", "buffer"}
        if unknown:
            raise EndoSpineError(f"{spec}: unknown option(s) {', '.join(sorted(unknown))}")
        backend = opts.get("backend", "any").lower()
        if backend not in BACKENDS:
            raise EndoSpineError(f"{spec}: backend must be one of {', '.join(BACKENDS)}")
        fourcc = opts.get("fourcc")
        if fourcc is not None and len(fourcc) != 4:
            raise EndoSpineError(f"{spec}: fourcc must be 4 characters, e.g. MJPG or YUYV")
        try:
            return cls(index, backend, _int(opts, "width"), _int(opts, "height"),
                       float(opts["fps"]) if "fps" in opts else None, fourcc,
                       _int(opts, "buffer") if "buffer" in opts else 1)
        except ValueError:
            raise EndoSpineError(f"{spec}: width, height, buffer must be whole numbers and fps a number") from None


def _int(opts: dict, key: str) -> int | None:
    return int(opts[key]) if key in opts else None


def opencv_device(settings: CaptureSettings):
    return cv2.VideoCapture(settings.index, BACKENDS[settings.backend])


class CaptureSource(Source):
    def __init__(self, settings: CaptureSettings, device_factory: Callable = opencv_device):
        super().__init__()
        self.settings = settings
        self.name = f"capture:{settings.index}"
        self._factory = device_factory
        self._cap = None

    @classmethod
    def from_spec(cls, spec: str, device_factory: Callable = opencv_device) -> "CaptureSource":
        return cls(CaptureSettings.parse(spec), device_factory)

    def open(self) -> None:
        s = self.settings
        cap = self._factory(s)
        if cap is None or not cap.isOpened():
            raise EndoSpineError(f"{self.name}: cannot open the capture device (backend {s.backend})")
        if s.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*s.fourcc))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, s.width), (cv2.CAP_PROP_FRAME_HEIGHT, s.height),
                            (cv2.CAP_PROP_FPS, s.fps), (cv2.CAP_PROP_BUFFERSIZE, s.buffer)):
            if value is not None:
                cap.set(prop, value)
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
        return self._frame(_to_rgb(bgr), None)

    def close(self) -> None:
        super().close()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
