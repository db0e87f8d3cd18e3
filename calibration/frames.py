"""Frames for calibration, read straight from a SOURCE string.

The app's sources (models/core/sources/registry.py) pace frames for display and carry replay controls;
calibration needs something else and may not import app: a handful of frames spread over a
recording (so that the tissue, instruments and exposure vary), or live frames stamped with
the monotonic time at which they arrived (latency). Both are small here:

    video file / stream URL   PyAV (frames spread over the file; a stream: the next ones)
    folder / image file       models.core.imageio, in name order, spread
    capture:N?...             OpenCV through models.core.optics.capture_settings (the profile's settings as defaults)
    synthetic[:SEED][?width=&height=]   the scene engine (models.synth), frames spread over a clip
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl

import av
import numpy as np

from models.core.optics.capture_settings import CaptureSettings, open_device, to_rgb
from models.core.errors import EndoSpineError
from models.core.imageio import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://", "http://", "https://")
SYNTHETIC_FRAMES = 300     # a synthetic source is sampled over its first 10 s


@dataclass(frozen=True)
class Sample:
    name: str            # for messages: "clip.mp4 frame 120", "refs/white.png", "capture:0 frame 7"
    image: np.ndarray    # HxWx3 uint8 RGB


def kind_of(spec: str) -> str:
    """'synthetic' | 'capture' | 'stream' | 'folder' | 'image' | 'video'."""
    if spec == "synthetic" or spec.startswith("synthetic:") or spec.startswith("synthetic?"):
        return "synthetic"
    if spec.startswith("capture:"):
        return "capture"
    if spec.startswith(STREAM_SCHEMES):
        return "stream"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video"


def sample_frames(spec: str, count: int, capture: CaptureSettings | None = None) -> list[Sample]:
    """Up to `count` frames of SOURCE, spread over it when it has an end. EndoSpineError naming
    the source when it cannot be read or gives no frame."""
    kind = kind_of(spec)
    if kind == "synthetic":
        frames = _synthetic(spec, count)
    elif kind == "capture":
        frames = [Sample(f"{spec} frame {i}", img) for i, (img, _) in zip(range(count), live_frames(spec, capture, every=3))]
    elif kind == "folder":
        files = sorted(p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EndoSpineError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        frames = [Sample(str(f), read_image(f)) for f in _spread(files, count)]
    elif kind == "image":
        frames = [Sample(spec, read_image(spec))]
    else:
        frames = _video(spec, count, stream=kind == "stream")
    if not frames:
        raise EndoSpineError(f"{spec}: no frames could be read")
    return frames


def live_frames(spec: str, capture: CaptureSettings | None = None, every: int = 1, warmup: int = 5
                ) -> Iterator[tuple[np.ndarray, float]]:
    """(RGB frame, time.monotonic() when it arrived) from a capture device or a stream, for as
    long as the caller iterates. The first `warmup` frames are dropped (auto exposure settling)."""
    kind = kind_of(spec)
    if kind == "capture":
        settings = CaptureSettings.parse(spec, capture)
        cap = open_device(settings)
        try:
            n = 0
            while True:
                ok, bgr = cap.read()
                t = time.monotonic()
                if not ok or bgr is None:
                    raise EndoSpineError(f"{spec}: the device stopped delivering frames")
                n += 1
                if n > warmup and (n - warmup) % every == 0:
                    yield to_rgb(bgr), t
        finally:
            cap.release()
    elif kind == "stream":
        container = _open_av(spec, stream=True)
        try:
            for n, frame in enumerate(container.decode(video=0)):
                t = time.monotonic()
                if n >= warmup and (n - warmup) % every == 0:
                    yield frame.to_ndarray(format="rgb24"), t
        except av.FFmpegError as exc:
            raise EndoSpineError(f"{spec}: stream broke ({exc})") from None
        finally:
            container.close()
    else:
        raise EndoSpineError(f"{spec}: a live source is needed here (capture:N or a stream URL), not a {kind}")


def _spread(items: list, count: int) -> list:
    if len(items) <= count:
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def _synthetic(spec: str, count: int) -> list[Sample]:
    from models.synth import SyntheticClip  # heavy; only when asked for

    head, _, query = spec.partition("?")
    _, _, seed = head.partition(":")
    try:
        opts = {k: int(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
        size = opts.pop("width", 960), opts.pop("height", 540)
        if opts:
            raise EndoSpineError(f"{spec}: unknown option(s) {', '.join(sorted(opts))}")
        clip = SyntheticClip(int(seed or 0), 0, *size)
    except ValueError:
        raise EndoSpineError(f"{spec}: expected synthetic[:SEED][?width=W&height=H] with whole numbers") from None
    return [Sample(f"{head} frame {t}", clip.render(t)[0]) for t in _spread(list(range(SYNTHETIC_FRAMES)), count)]


def _open_av(spec: str, stream: bool):
    if not stream:
        path = Path(spec)
        if not path.is_file():
            raise EndoSpineError(f"{spec}: no such file or folder")
        if path.stat().st_size == 0:
            raise EndoSpineError(f"{spec}: file is empty (0 bytes)")
    try:
        container = av.open(spec, options={"rtsp_transport": "tcp", "timeout": "5000000"} if stream else {},
                            timeout=10.0 if stream else None)
        if not container.streams.video:
            container.close()
            raise EndoSpineError(f"{spec}: no video stream")
        return container
    except (av.FFmpegError, UnicodeDecodeError, OSError):
        raise EndoSpineError(f"{spec}: {'cannot connect' if stream else 'not a readable video or image'}") from None


def _video(spec: str, count: int, stream: bool) -> list[Sample]:
    container = _open_av(spec, stream)
    name = spec if stream else Path(spec).name
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        total = vs.frames or (int(float(vs.duration * vs.time_base) * float(vs.average_rate))
                              if vs.duration and vs.average_rate else 0)
        if not stream and total > 30 * count and vs.duration:
            return _video_seek(container, vs, name, count)   # long recording: jump, do not decode it all
        step = max(1, total // count) if total and not stream else 1
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
