"""Fake sources for tests: no hardware, no files, scripted behavior."""
from __future__ import annotations

import time

import numpy as np

from app.capture_thread import CaptureThread, LatestFrame
from models.core.errors import EndoSpineError
from models.core.sources.base import Source


class ListSource(Source):
    """Delivers the given images (optionally paced at fps), then ends."""

    def __init__(self, images, fps: float = 30.0, realtime: bool = False, fail_open: str | None = None,
                 raise_at: int | None = None):
        super().__init__()
        self.images = list(images)
        self.fps = fps
        self.realtime = realtime
        self.fail_open = fail_open
        self.raise_at = raise_at
        self.name = "fake"
        self.closed = False
        self._t0 = None

    def open(self) -> None:
        if self.fail_open:
            raise EndoSpineError(self.fail_open)
        self.size = (self.images[0].shape[1], self.images[0].shape[0]) if self.images else (0, 0)
        self.opened = True

    def read(self):
        import time

        i = self._next_id
        if i == self.raise_at:
            raise RuntimeError("driver exploded")
        if i >= len(self.images) or self._stop.is_set():
            return None
        if self.realtime:
            if self._t0 is None:
                self._t0 = time.monotonic()
            if not self._wait_until(self._t0 + i / self.fps):
                return None
        return self._frame(self.images[i], i / self.fps)

    def close(self) -> None:
        super().close()
        self.closed = True


def gray_frames(n: int, w: int = 32, h: int = 24):
    return [np.full((h, w, 3), (i * 10) % 256, np.uint8) for i in range(n)]


def start_capture(source: Source, until, timeout_s: float = 20.0) -> tuple[CaptureThread, LatestFrame]:
    """A started capture thread on `source` and its store, once `until(source, store)` holds (or
    `timeout_s` passed; the test's assertions then say what was missing)."""
    store = LatestFrame()
    thread = CaptureThread(source, store)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not until(source, store) and time.monotonic() < deadline:
        time.sleep(0.01)
    return thread, store
