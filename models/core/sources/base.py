"""The interface every frame source implements: open(), read() -> Frame | None, close()."""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame


class Source(ABC):
    """A frame source. Subclasses set `fps` (nominal) and `size` (width, height) after open()."""

    name: str = "source"
    fps: float = 30.0
    size: tuple[int, int] = (0, 0)
    opened: bool = False  # set by open() on success
    realtime: bool = True  # deliver at the source's own pace; False: as fast as read() is called
    timing: Timing = DEFAULT_TIMING  # the rules a source applies itself (a capture card's hang, reconnects)
    # frames larger than this (w, h) are delivered as a view of this size, their full-resolution
    # planes kept beside it (Frame.full; models/core/picture.py); None: every frame at its own size
    view_max: tuple[int, int] | None = None
    # keep a reduced frame's full-resolution planes (Frame.full); the display turns this off while
    # it neither records nor takes a snapshot (copying a 4K frame's planes costs CPU it needs)
    full_planes: bool = True

    def __init__(self) -> None:
        self._next_id = 0
        self._stop = threading.Event()
        self.timestamp_repairs = 0  # frames whose pts was missing, repeated or went backwards
        self._last_pts: float | None = None

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    def close(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """close() or interrupt() was called."""
        return self._stop.is_set()

    def keep_full(self, on: bool) -> None:
        """Whether reduced frames carry their full-resolution planes from now on (any thread)."""
        self.full_planes = on

    def interrupt(self) -> None:
        """Wake a read() that is waiting for its frame's due time (called from another thread)."""
        self._stop.set()

    # -- what the display asks (GUI thread; cheap, never blocks on the source) ------------------
    # Facts only: whether the picture is live (NO SIGNAL, NO SOURCE IMAGE) is decided in app.decide.
    def signal_note(self) -> str:
        """Why no frames are coming, in words, for the NO SIGNAL screen ('' if nothing known)."""
        return ""

    def blank(self, image: np.ndarray) -> bool:
        """True if this delivered frame carries no picture (live sources: uniform black)."""
        return False

    def idle(self) -> bool:
        """True while no frames are expected (a paused replay): frame age then means nothing."""
        return False

    def end_note(self) -> str:
        """How the source ended, in words, once read() has returned None ('' : a normal end)."""
        return ""

    def _frame(self, image: np.ndarray, pts: float | None, full=None, arrived: float | None = None) -> Frame:
        """The next Frame; `arrived`: when the source had the picture (time.monotonic(); default
        now), its capture time, so that latencies count the work done on it after that."""
        frame = Frame(self._next_id, time.monotonic() if arrived is None else arrived, pts, image, full)
        self._next_id += 1
        return frame

    def _rising_pts(self, pts: float | None, invent_first: bool = True) -> float | None:
        """`pts` forced to rise, so frames never go out of order: a missing, repeated or backward
        timestamp becomes the last one plus a frame interval (counted in timestamp_repairs).
        Before any timestamp: the frame index over fps, or None with invent_first=False (a device
        that gives no timestamps at all keeps none)."""
        if pts is not None and (self._last_pts is None or pts > self._last_pts):
            self._last_pts = pts
            return pts
        if self._last_pts is None and not invent_first:
            return None
        self.timestamp_repairs += 1
        pts = self._last_pts + 1.0 / self.fps if self._last_pts is not None else self._next_id / self.fps
        self._last_pts = pts
        return pts

    def _wait_until(self, due: float) -> bool:
        """Sleep until monotonic time `due`; False if interrupted."""
        delay = due - time.monotonic()
        return not (delay > 0 and self._stop.wait(delay))

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
