"""Frames for calibration, read from a SOURCE string through the core's source registry.

Calibration needs two things the display does not: a handful of frames spread over a recording
(so that the tissue, instruments and exposure vary), and live frames stamped with the monotonic
time at which they arrived (latency). The kinds and the sources are the core's
(models.core.sources.registry: kind_of, SOURCE_KINDS); only the spreading is done here:

    video file     PyAV, frames spread over the file (a long one: keyframe seeks across it)
    folder         FolderSource's images, spread; an image file: that image
    synthetic      SyntheticSource, frames spread over its first SYNTHETIC_FRAMES
    capture:N      CaptureSource (the profile's settings as defaults), live, one session
    stream URL     VideoSource, live
    any other kind its source from the registry: its first frames (live_frames if it is live)

Files are decoded in this process: the tools are run by hand on the user's own recordings, and a
crash is a failed command, not a blanked OR monitor (the display decodes in a child process).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.optics.capture_settings import CaptureSettings, opencv_device
from models.core.sources.base import Source
from models.core.sources.capture_card import CaptureSource
from models.core.sources.folder import FolderSource
from models.core.sources.registry import SOURCE_KINDS, kind_of, open_source
from models.core.sources.synthetic import SyntheticSource
from models.core.types import Frame

SYNTHETIC_FRAMES = 300     # a synthetic source is sampled over its first 10 s


@dataclass(frozen=True)
class Sample:
    name: str            # for messages: "clip.mp4 frame 120", "refs/white.png", "capture:0 frame 7"
    image: np.ndarray    # HxWx3 uint8 RGB


def sample_frames(spec: str, count: int, capture: CaptureSettings | None = None) -> list[Sample]:
    """Up to `count` frames of SOURCE, spread over it when it has an end. EndoSpineError naming
    the source when it cannot be read or gives no frame."""
    kind = kind_of(spec)
    if kind == "synthetic":
        frames = _synthetic(spec, count)
    elif kind == "folder":
        folder = FolderSource.from_spec(spec)
        folder.open()
        frames = [Sample(str(f), read_image(f)) for f in _spread(folder.files, count)]
    elif kind == "image":
        frames = [Sample(spec, read_image(spec))]
    elif kind == "video":
        frames = _video(spec, count)
    elif kind == "capture":
        live = live_frames(spec, capture, every=3)
        frames = [Sample(f"{spec} frame {i}", img) for i, (img, _) in zip(range(count), live)]
    else:  # a stream, or a kind with no spreading of its own here: the first frames it gives
        frames = [Sample(f"{spec} frame {n}", img) for n, (img, _) in zip(range(count), _stamped(spec, kind, capture))]
    if not frames:
        raise EndoSpineError(f"{spec}: no frames could be read")
    return frames


def live_frames(spec: str, capture: CaptureSettings | None = None, every: int = 1, warmup: int = 5
                ) -> Iterator[tuple[np.ndarray, float]]:
    """(RGB frame, time.monotonic() when it arrived) from a capture device or a stream, for as
    long as the caller iterates: the sources' own Frame.capture_time, the stamp the display
    works with. The first `warmup` frames are dropped (auto exposure settling)."""
    kind = kind_of(spec)
    if not SOURCE_KINDS[kind].live:
        raise EndoSpineError(f"{spec}: a live source is needed here (capture:N or a stream URL), not a {kind}")
    for n, stamped in enumerate(_stamped(spec, kind, capture), start=1):
        if n > warmup and (n - warmup) % every == 0:
            yield stamped


def _stamped(spec: str, kind: str, capture: CaptureSettings | None) -> Iterator[tuple[np.ndarray, float]]:
    """(image, arrival time) of every frame of the kind's source until it ends (closed after).
    A capture device is opened for one session; a source that is not live is read as fast as it goes."""
    if kind == "capture":
        source: Source = CaptureSource.from_spec(spec, device_factory=_OneSession(spec), defaults=capture)
    else:
        source = open_source(spec, capture=capture)
        source.realtime = source.realtime and SOURCE_KINDS[kind].live
    source.open()
    try:
        while (frame := _next_frame(source, spec)) is not None:
            yield frame.image, frame.capture_time
    finally:
        source.close()


class _OneSession:
    """Opens the capture device once. A measurement is one session: when the device stops
    delivering, the command fails and says so (the display instead reopens it every second)."""

    def __init__(self, spec: str):
        self.spec = spec
        self.used = False

    def __call__(self, settings: CaptureSettings):
        if self.used:
            raise EndoSpineError(f"{self.spec}: the device stopped delivering frames")
        self.used = True
        return opencv_device(settings)


def _next_frame(source: Source, spec: str) -> Frame | None:
    """The next frame; None at the end, EndoSpineError when a stream breaks off instead."""
    broken = getattr(source, "corrupt_packets", 0)
    frame = source.read()
    if frame is None and getattr(source, "corrupt_packets", 0) > broken:  # it failed, it did not end
        raise EndoSpineError(f"{spec}: stream broke")
    return frame


def _spread(items: list, count: int) -> list:
    if len(items) <= count:
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def _synthetic(spec: str, count: int) -> list[Sample]:
    source = SyntheticSource.from_spec(spec)
    source.open()
    head = spec.partition("?")[0]
    return [Sample(f"{head} frame {t}", source.image_at(t)) for t in _spread(list(range(SYNTHETIC_FRAMES)), count)]


def _open_file(spec: str):
    path = Path(spec)
    if not path.is_file():
        raise EndoSpineError(f"{spec}: no such file or folder")
    if path.stat().st_size == 0:
        raise EndoSpineError(f"{spec}: file is empty (0 bytes)")
    try:
        container = av.open(spec)
    except (av.FFmpegError, UnicodeDecodeError, OSError):
        raise EndoSpineError(f"{spec}: not a readable video or image") from None
    if not container.streams.video:
        container.close()
        raise EndoSpineError(f"{spec}: no video stream")
    return container


def _video(spec: str, count: int) -> list[Sample]:
    container = _open_file(spec)
    name = Path(spec).name
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        total = vs.frames or (int(float(vs.duration * vs.time_base) * float(vs.average_rate))
                              if vs.duration and vs.average_rate else 0)
        if total > 30 * count and vs.duration:
            return _video_seek(container, vs, name, count)   # long recording: jump, do not decode it all
        step = max(1, total // count) if total else 1
        out = []
        for n, frame in enumerate(container.decode(vs)):
            if n % step == 0:
                out.append(Sample(f"{name} frame {n}", frame.to_ndarray(format="rgb24")))
                if len(out) >= count:
                    break
        return out
    except av.FFmpegError as exc:
        raise EndoSpineError(f"{spec}: cannot decode ({exc})") from None
    finally:
        container.close()


def _video_seek(container, vs, name: str, count: int) -> list[Sample]:
    """The first frame after each of `count` keyframe seeks spread over the recording."""
    out = []
    for target in np.linspace(0, vs.duration * 0.98, count).astype(int):
        container.seek(int(target) + (vs.start_time or 0), stream=vs, backward=True)
        frame = next(container.decode(vs), None)
        if frame is not None:
            t = float(frame.pts * vs.time_base) if frame.pts is not None else 0.0
            out.append(Sample(f"{name} at {t:.2f} s", frame.to_ndarray(format="rgb24")))
    return out
