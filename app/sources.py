"""Frame sources behind one small interface: open(), read() -> Frame | None, close().

Chosen from the SOURCE string by `open_source`:
    path/to/video.mp4     a video file (PyAV), paced by its presentation timestamps, optional loop
    synthetic[:seed]      live frames from the synthetic scene engine (demos, tests)

read() blocks until the next frame is due and returns None at the end of the source.
Every frame comes out as HxWx3 uint8 RGB whatever the source's pixel format.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import av
import numpy as np

from models.errors import EndoSpineError
from models.types import Frame


class Source(ABC):
    """A frame source. Subclasses set `fps` (nominal) and `size` (width, height) after open()."""

    name: str = "source"
    fps: float = 30.0
    size: tuple[int, int] = (0, 0)
    opened: bool = False  # set by open() on success
    realtime: bool = True  # deliver at the source's own pace; False: as fast as read() is called

    def __init__(self) -> None:
        self._next_id = 0
        self._stop = threading.Event()

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    def close(self) -> None:
        self._stop.set()

    def interrupt(self) -> None:
        """Wake a read() that is waiting for its frame's due time (called from another thread)."""
        self._stop.set()

    def _frame(self, image: np.ndarray, pts: float | None) -> Frame:
        frame = Frame(self._next_id, time.monotonic(), pts, image)
        self._next_id += 1
        return frame

    def _wait_until(self, due: float) -> bool:
        """Sleep until monotonic time `due`; False if interrupted."""
        delay = due - time.monotonic()
        return not (delay > 0 and self._stop.wait(delay))

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileSource(Source):
    """A video file decoded by PyAV and delivered at its own frame rate (by pts)."""

    def __init__(self, path: str | Path, loop: bool = False, realtime: bool = True):
        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        self.loop = loop
        self.realtime = realtime
        self._container = None
        self._frames = None
        self._t0: float | None = None  # monotonic time of pts 0 in the current pass

    def open(self) -> None:
        if not self.path.is_file():
            raise EndoSpineError(f"{self.path}: video file not found")
        if self.path.stat().st_size == 0:
            raise EndoSpineError(f"{self.path}: file is empty (0 bytes)")
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, UnicodeDecodeError) as exc:
            self._close_container()
            reason = "no video stream" if isinstance(exc, IndexError) else "not a readable video"
            raise EndoSpineError(f"{self.path}: {reason}") from None
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.size = (stream.codec_context.width, stream.codec_context.height)
        self._frames = self._container.decode(stream)
        self._t0 = None
        self.opened = True

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            try:
                frame = next(self._frames)
            except StopIteration:
                if not self.loop or self._next_id == 0:
                    return None
                self._restart()
                continue
            except av.FFmpegError:
                continue  # a corrupt packet: skip it, keep going
            pts = float(frame.time) if frame.time is not None else self._next_id / self.fps
            if self._t0 is None:  # pacing starts with the first frame read, not at open()
                self._t0 = time.monotonic() - pts
            if self.realtime and not self._wait_until(self._t0 + pts):
                return None
            # odd widths come back with padded rows: make them contiguous (copies only then)
            return self._frame(np.ascontiguousarray(frame.to_ndarray(format="rgb24")), pts)
        return None

    def _restart(self) -> None:
        self._container.seek(0)
        self._frames = self._container.decode(self._container.streams.video[0])
        self._t0 = None

    def close(self) -> None:
        super().close()
        self._close_container()

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


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


def open_source(spec: str, loop: bool = False) -> Source:
    """Build (not yet open) the source a SOURCE string names."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        _, _, seed = spec.partition(":")
        try:
            return SyntheticSource(int(seed or 0))
        except ValueError:
            raise EndoSpineError(f"{spec}: expected synthetic or synthetic:SEED with a whole-number seed") from None
    return FileSource(spec, loop=loop)
