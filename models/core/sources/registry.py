"""The source registry: what a SOURCE string names, and the source that plays it.

One table, SOURCE_KINDS, for the display, render, bench and calibration alike. Its entries are
tried in order; the first whose rule claims the string names its kind:

    synthetic   synthetic[:SEED][?width=&height=]   live frames from the synthetic scene engine
    capture     capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=]   a capture card or camera (OpenCV)
    stream      rtsp:// rtsps:// rtmp:// udp:// tcp:// srt:// http:// https://   a network stream (PyAV), as it arrives
    folder      path/to/folder[?fps=N]              its images in name order, N per second (default 10)
    image       path/to/picture.png (IMAGE_SUFFIXES) one image (played by PyAV as a one-frame video)
    video       any other path                      a video file (PyAV), paced by its timestamps; pause/seek/speed/loop

`kind_of(spec)` names the kind; `open_source(spec, ...)` builds that kind's source, not yet
opened. Calibration (calibration.frames) classifies with the same kind_of and reads frames from
the same classes. Adding a source kind is one SourceKind entry in SOURCE_KINDS (its name, the
rule that claims its strings, its Source class, how to build one from the string, whether it is
live): nothing else dispatches on SOURCE strings, and the display, render, bench and calibration
(its first frames; latency if live) take it from there.

read() blocks until the next frame is due and returns None at the end of the source. Every
frame comes out as HxWx3 uint8 RGB whatever the source's pixel format.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl

import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.optics.capture_settings import CaptureSettings
from models.core.sources.base import Source
from models.core.sources.capture_card import CaptureSource
from models.core.sources.replay import ReplaySource
from models.core.sources.video import STREAM_SCHEMES, VideoSource
from models.core.types import Frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SYNTHETIC_SIZE = (960, 540)


class SyntheticSource(Source):
    """Live frames from the synthetic scene engine at a fixed rate."""

    def __init__(self, seed: int = 0, width: int = SYNTHETIC_SIZE[0], height: int = SYNTHETIC_SIZE[1],
                 fps: float = 30.0):
        super().__init__()
        self.seed = seed
        self.name = f"synthetic:{seed}"
        self.fps = fps
        self.size = (width, height)
        self._clip = None
        self._t0: float | None = None

    @classmethod
    def from_spec(cls, spec: str) -> "SyntheticSource":
        """`synthetic[:SEED][?width=W&height=H]` (seed 0 and 960x540 when not given)."""
        head, _, query = spec.partition("?")
        _, _, seed = head.partition(":")
        try:
            opts = {k: int(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
            size = opts.pop("width", SYNTHETIC_SIZE[0]), opts.pop("height", SYNTHETIC_SIZE[1])
            if opts:
                raise EndoSpineError(f"{spec}: unknown option(s) {', '.join(sorted(opts))}")
            return cls(int(seed or 0), *size)
        except ValueError:
            raise EndoSpineError(f"{spec}: expected synthetic[:SEED][?width=W&height=H] with whole numbers") from None

    def open(self) -> None:
        from models.synth import SyntheticClip  # the engine is heavy to import; only when used

        self._clip = SyntheticClip(self.seed, 0, *self.size)
        self._t0 = None
        self.opened = True

    def image_at(self, t: int) -> np.ndarray:
        """Frame number t of the clip, in any order (after open())."""
        return self._clip.render(t)[0]

    def read(self) -> Frame | None:
        t = self._next_id
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + t / self.fps)):
            return None
        return self._frame(self.image_at(t), t / self.fps)


class FolderSource(Source):
    """The images of a folder, in file-name order, at a fixed rate."""

    def __init__(self, folder: str | Path, fps: float = 10.0, loop: bool = False):
        super().__init__()
        self.folder = Path(folder)
        self.name = self.folder.name or str(self.folder)
        self.fps = fps
        self.loop = loop
        self.files: list[Path] = []  # the images, in name order (after open())
        self._t0: float | None = None
        self.unreadable = 0  # images skipped because they could not be read

    @classmethod
    def from_spec(cls, spec: str, loop: bool = False) -> "FolderSource":
        """`path/to/folder[?fps=N]`, N in (0, 240] (default 10)."""
        path, _, query = spec.partition("?")
        try:
            fps = float(dict(parse_qsl(query)).get("fps", 10))
        except ValueError:
            raise EndoSpineError(f"{spec}: fps must be a number") from None
        if not 0 < fps <= 240:
            raise EndoSpineError(f"{spec}: fps must be in (0, 240]")
        return cls(path, fps=fps, loop=loop)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise EndoSpineError(f"{self.folder}: folder not found")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise EndoSpineError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = read_image(self.files[0])
        self.size = (first.shape[1], first.shape[0])
        self.opened = True

    def read(self) -> Frame | None:
        while True:
            n = self._next_id + self.unreadable
            if n >= len(self.files) and not self.loop:
                return None
            if self._t0 is None:
                self._t0 = time.monotonic()
            if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + n / self.fps)):
                return None
            try:
                image = read_image(self.files[n % len(self.files)])
            except EndoSpineError:
                self.unreadable += 1  # skipped, counted; the clock goes on
                continue
            return self._frame(image, n / self.fps)


# -- the registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenOptions:
    """How the caller wants its source; each kind uses what applies to it."""

    loop: bool = False                       # files and folders: start again at the end
    capture: CaptureSettings | None = None   # capture devices: settings the spec does not give (a profile's)
    isolated: bool = False                   # video and image files: decode in a child process (the display)


@dataclass(frozen=True)
class SourceKind:
    """One kind of SOURCE string: the strings it claims and the source that plays them."""

    name: str
    claims: Callable[[str], bool]                 # does this SOURCE string name this kind?
    cls: type[Source]                             # what plays it (build returns one of these)
    build: Callable[[str, OpenOptions], Source]   # the source for a string (not yet opened)
    live: bool = False                            # frames arrive as they happen: arrival times mean something


def _file(spec: str, how: OpenOptions) -> ReplaySource:
    """VideoSource, or with `isolated` the same player in a child process (IsolatedVideoSource)."""
    if how.isolated:  # a decoder crash on a hostile file must not take the display down
        from models.core.sources.isolated import IsolatedVideoSource  # child processes: only when asked for

        return IsolatedVideoSource(spec, loop=how.loop)
    return VideoSource(spec, loop=how.loop)


SOURCE_KINDS: dict[str, SourceKind] = {kind.name: kind for kind in (
    SourceKind("synthetic", lambda s: s == "synthetic" or s.startswith(("synthetic:", "synthetic?")),
               SyntheticSource, lambda s, how: SyntheticSource.from_spec(s)),
    SourceKind("capture", lambda s: s.startswith("capture:"),
               CaptureSource, lambda s, how: CaptureSource.from_spec(s, defaults=how.capture), live=True),
    SourceKind("stream", lambda s: s.startswith(STREAM_SCHEMES),
               VideoSource, lambda s, how: VideoSource(s), live=True),
    SourceKind("folder", lambda s: Path(s.partition("?")[0]).is_dir(),
               FolderSource, lambda s, how: FolderSource.from_spec(s, loop=how.loop)),
    SourceKind("image", lambda s: Path(s).suffix.lower() in IMAGE_SUFFIXES,
               ReplaySource, _file),
    SourceKind("video", lambda s: True,  # anything else is a file for FFmpeg to read
               ReplaySource, _file),
)}


def kind_of(spec: str) -> str:
    """The kind of source a SOURCE string names (a key of SOURCE_KINDS). EndoSpineError, one line
    naming the string, for one that names nothing: empty, or a URL scheme no source reads."""
    if not spec.strip():
        raise EndoSpineError(f"SOURCE {spec!r} is empty: give a video file, a folder, a stream URL, "
                             "capture:N or synthetic")
    scheme, sep, _ = spec.partition("://")
    if sep and scheme.isalnum() and not spec.startswith(STREAM_SCHEMES):
        raise EndoSpineError(f"{spec}: unknown scheme {scheme}:// (streams: {' '.join(STREAM_SCHEMES)})")
    return next(name for name, kind in SOURCE_KINDS.items() if kind.claims(spec))


def open_source(spec: str, loop: bool = False, capture: CaptureSettings | None = None,
                isolated: bool = False) -> Source:
    """Build (not yet open) the source a SOURCE string names. capture: settings for a capture
    device's options the spec does not give (an endoscope profile's capture section).
    isolated: decode video files in a child process (the display: a decoder crash must not end it)."""
    return SOURCE_KINDS[kind_of(spec)].build(spec, OpenOptions(loop=loop, capture=capture, isolated=isolated))
