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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.core.errors import EndoSpineError
from models.core.imageio import IMAGE_SUFFIXES
from models.core.optics.capture_settings import CaptureSettings
from models.core.sources.base import Source
from models.core.sources.capture_card import CaptureSource
from models.core.sources.folder import FolderSource
from models.core.sources.replay import ReplaySource
from models.core.sources.synthetic import SyntheticSource
from models.core.sources.video import STREAM_SCHEMES, VideoSource


@dataclass(frozen=True)
class OpenOptions:
    """How the caller wants its source; each kind uses what applies to it."""

    loop: bool = False                       # files and folders: start again at the end
    capture: CaptureSettings | None = None   # capture devices: settings the spec does not give (a profile's)
    isolated: bool = False                   # video and image files: decode in a child process (the display)
    view_max: tuple[int, int] | None = None  # larger frames: a view of this size + full planes (Frame.full)


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
                isolated: bool = False, view_max: tuple[int, int] | None = None) -> Source:
    """Build (not yet open) the source a SOURCE string names. capture: settings for a capture
    device's options the spec does not give (an endoscope profile's capture section).
    isolated: decode video files in a child process (the display: a decoder crash must not end it).
    view_max: frames larger than this (w, h) come as a view of at most this size, their
    full-resolution planes beside it (Frame.full; sources that read YUV: files, streams, capture
    cards delivering raw YUV); None: every frame at its own size."""
    source = SOURCE_KINDS[kind_of(spec)].build(spec, OpenOptions(loop=loop, capture=capture, isolated=isolated,
                                                                 view_max=view_max))
    source.view_max = view_max
    return source
