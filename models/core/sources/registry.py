"""Frame sources, chosen from the SOURCE string by `open_source`:

    path/to/video.mp4               a video file (PyAV), paced by its timestamps; pause/seek/speed/loop
    rtsp://... udp://... http://...  a network stream (PyAV), as it arrives
    path/to/folder/                 the images of a folder in name order, at ?fps=N (default 10)
    capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=]   a capture card or camera (OpenCV)
    synthetic[:seed]                live frames from the synthetic scene engine (demos, tests)

read() blocks until the next frame is due and returns None at the end of the source. Every
frame comes out as HxWx3 uint8 RGB whatever the source's pixel format.
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl

from models.core.optics.capture_settings import CaptureSettings
from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.types import Frame

from models.core.sources.base import Source
from models.core.sources.video import STREAM_SCHEMES, VideoSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class SyntheticSource(Source):
    """Live frames from the synthetic scene engine at a fixed rate."""

    def __init__(self, seed: int = 0, width: int = 960, height: int = 540, fps: float = 30.0):
        super().__init__()
        self.seed = seed
        self.name = f"synthetic:{seed}"
        self.fps = fps
        self.size = (width, height)
        self._clip = None
        self._t0: float | None = None

    def open(self) -> None:
        from models.synth import SyntheticClip  # the engine is heavy to import; only when used

        self._clip = SyntheticClip(self.seed, 0, *self.size)
        self._t0 = None
        self.opened = True

    def read(self) -> Frame | None:
        t = self._next_id
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + t / self.fps)):
            return None
        image, _ = self._clip.render(t)
        return self._frame(image, t / self.fps)


class FolderSource(Source):
    """The images of a folder, in file-name order, at a fixed rate."""

    def __init__(self, folder: str | Path, fps: float = 10.0, loop: bool = False):
        super().__init__()
        self.folder = Path(folder)
        self.name = self.folder.name or str(self.folder)
        self.fps = fps
        self.loop = loop
        self._files: list[Path] = []
        self._t0: float | None = None
        self.unreadable = 0  # images skipped because they could not be read

    def open(self) -> None:
        if not self.folder.is_dir():
            raise EndoSpineError(f"{self.folder}: folder not found")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise EndoSpineError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = read_image(self._files[0])
        self.size = (first.shape[1], first.shape[0])
        self.opened = True

    def read(self) -> Frame | None:
        while True:
            n = self._next_id + self.unreadable
            if n >= len(self._files) and not self.loop:
                return None
            if self._t0 is None:
                self._t0 = time.monotonic()
            if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + n / self.fps)):
                return None
            try:
                image = read_image(self._files[n % len(self._files)])
            except EndoSpineError:
                self.unreadable += 1  # skipped, counted; the clock goes on
                continue
            return self._frame(image, n / self.fps)


def open_source(spec: str, loop: bool = False, capture: CaptureSettings | None = None,
                isolated: bool = False) -> Source:
    """Build (not yet open) the source a SOURCE string names. capture: settings for a capture
    device's options the spec does not give (an endoscope profile's capture section).
    isolated: decode video files in a child process (the display: a decoder crash must not end it)."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        _, _, seed = spec.partition(":")
        try:
            return SyntheticSource(int(seed or 0))
        except ValueError:
            raise EndoSpineError(f"{spec}: expected synthetic or synthetic:SEED with a whole-number seed") from None
    if spec.startswith("capture:"):
        from models.core.sources.capture_card import CaptureSource

        return CaptureSource.from_spec(spec, defaults=capture)
    if spec.startswith(STREAM_SCHEMES):
        return VideoSource(spec)
    path, _, query = spec.partition("?")
    if Path(path).is_dir():
        opts = dict(parse_qsl(query))
        try:
            fps = float(opts.get("fps", 10))
        except ValueError:
            raise EndoSpineError(f"{spec}: fps must be a number") from None
        if not 0 < fps <= 240:
            raise EndoSpineError(f"{spec}: fps must be in (0, 240]")
        return FolderSource(path, fps=fps, loop=loop)
    if isolated:
        from models.core.sources.isolated import IsolatedVideoSource

        return IsolatedVideoSource(spec, loop=loop)
    return VideoSource(spec, loop=loop)
