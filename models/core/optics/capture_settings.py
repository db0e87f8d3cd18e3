"""Capture card / camera settings, and the OpenCV calls that apply them to a device.

One dataclass for the `capture:N?...` source (models.core.sources.capture_card, which the
display and the calibration tools both read the tower through) and the `capture` section of an
endoscope profile (the settings a tower was calibrated with). Qt-free, no app imports.

    capture:N[?backend=v4l2&width=1920&height=1080&fps=30&fourcc=MJPG&buffer=1]
    capture:N?width=3840&height=2160&fourcc=UYVY&raw=1    a 4K card's YUV, unconverted
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from urllib.parse import parse_qsl, urlencode

import cv2
import numpy as np

from models.core.errors import EndoSpineError

BACKENDS = {"any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "dshow": cv2.CAP_DSHOW, "msmf": cv2.CAP_MSMF,
            "avfoundation": cv2.CAP_AVFOUNDATION, "gstreamer": cv2.CAP_GSTREAMER, "ffmpeg": cv2.CAP_FFMPEG}
OPTIONS = ("backend", "width", "height", "fps", "fourcc", "buffer", "raw")
# fourcc codes a card can hand over unconverted (raw=1) -> the pixel layout (models/core/picture.py)
RAW_FOURCC = {"YUYV": "yuyv422", "YUY2": "yuyv422", "UYVY": "uyvy422", "NV12": "nv12", "I420": "yuv420p",
              "YU12": "yuv420p"}


@dataclass(frozen=True)
class CaptureSettings:
    index: int
    backend: str = "any"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None      # e.g. MJPG, YUYV
    buffer: int | None = 1         # driver-side queue: 1 keeps latency low
    raw: bool = False              # take the card's YUV (fourcc YUYV, UYVY, NV12, I420) unconverted: a 4K
                                   # frame is scaled plane by plane to the view, then converted (picture.py)

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What is wrong with these settings, in words, or None."""
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            return f"device must be a whole number >= 0, got {self.index!r}"
        if self.backend not in BACKENDS:
            return f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
        for name in ("width", "height", "buffer"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "buffer" else 1)):
                return f"{name} must be a positive whole number, got {v!r}"
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or not 0 < self.fps <= 1000):
            return f"fps must be a number in (0, 1000], got {self.fps!r}"
        if self.fourcc is not None and (not isinstance(self.fourcc, str) or len(self.fourcc) != 4):
            return f"fourcc must be 4 characters, e.g. MJPG or YUYV, got {self.fourcc!r}"
        if not isinstance(self.raw, bool):
            return f"raw must be true or false, got {self.raw!r}"
        if self.raw and (self.fourcc or "").upper() not in RAW_FOURCC:
            return f"raw needs a YUV fourcc ({', '.join(RAW_FOURCC)}), got {self.fourcc!r}"
        return None

    @property
    def raw_format(self) -> str | None:
        """The pixel layout of the card's unconverted frames (raw), else None (OpenCV converts to BGR)."""
        return RAW_FOURCC[self.fourcc.upper()] if self.raw else None

    @classmethod
    def parse(cls, spec: str, defaults: "CaptureSettings | None" = None) -> "CaptureSettings":
        """`capture:N[?options]`; options not given in the spec come from `defaults` (e.g. a profile)."""
        head, _, query = spec.partition("?")
        try:
            index = int(head.split(":", 1)[1])
            opts = dict(parse_qsl(query, strict_parsing=bool(query)))
        except (ValueError, IndexError):
            raise EndoSpineError(f"{spec}: expected capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=&raw=]") from None
        unknown = set(opts) - set(OPTIONS)
        if unknown:
            raise EndoSpineError(f"{spec}: unknown option(s) {', '.join(sorted(unknown))}")
        base = {f.name: getattr(defaults, f.name) for f in fields(cls)} if defaults else {"buffer": 1}
        base["index"] = index
        try:
            if "backend" in opts:
                base["backend"] = opts["backend"].lower()
            for key in ("width", "height", "buffer"):
                if key in opts:
                    base[key] = int(opts[key])
            if "fps" in opts:
                base["fps"] = float(opts["fps"])
        except ValueError:
            raise EndoSpineError(f"{spec}: width, height, buffer must be whole numbers and fps a number") from None
        if "fourcc" in opts:
            base["fourcc"] = opts["fourcc"]
        if "raw" in opts:
            if opts["raw"] not in ("0", "1"):
                raise EndoSpineError(f"{spec}: raw must be 0 or 1, got {opts['raw']!r}")
            base["raw"] = opts["raw"] == "1"
        try:
            return cls(**base)
        except ValueError as exc:
            raise EndoSpineError(f"{spec}: {exc}") from None

    def spec(self) -> str:
        """The SOURCE string that opens this device with these settings."""
        opts = {k: getattr(self, k) for k in OPTIONS if getattr(self, k) is not None}
        if opts.get("backend") == "any":
            del opts["backend"]
        opts["raw"] = int(opts["raw"])
        if not opts["raw"]:
            del opts["raw"]
        return f"capture:{self.index}" + (f"?{urlencode(opts)}" if opts else "")

    def with_actual(self, width: int, height: int, fps: float | None) -> "CaptureSettings":
        """The settings as the device actually negotiated them."""
        return replace(self, width=width, height=height, fps=fps if fps else self.fps)


def opencv_device(settings: CaptureSettings):
    return cv2.VideoCapture(settings.index, BACKENDS[settings.backend])


def configure(cap, settings: CaptureSettings) -> None:
    """Ask the device for the settings (drivers may round or ignore them; read back what they took)."""
    if settings.fourcc:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*settings.fourcc))
    if settings.raw:  # the driver's buffer as it is: no BGR conversion in OpenCV (V4L2 honours this)
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, settings.width), (cv2.CAP_PROP_FRAME_HEIGHT, settings.height),
                        (cv2.CAP_PROP_FPS, settings.fps), (cv2.CAP_PROP_BUFFERSIZE, settings.buffer)):
        if value is not None:
            cap.set(prop, value)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """A frame as OpenCV delivers it (BGR, BGRA, gray, 16-bit) -> HxWx3 uint8 RGB."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
