"""The capture thread, the latest-frame slot it fills, and the review-mode gate it may wait on.

The capture thread reads its source as fast as the source delivers and puts each frame into a
one-slot store that keeps only the newest frame: a slow reader (the display, the AI) never
makes the source wait, it just skips the frames it had no time for (counted as drops). Only in
review mode does it wait, on a ReviewGate, until the display has put the frame up.
"""
from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from models.core.errors import EndoSpineError
from models.core.sources.base import Source
from models.core.types import Frame


class LatestFrame:
    """A one-slot, thread-safe store: put() replaces, get_newer() returns the newest unseen frame."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self.put_count = 0
        self.overwritten = 0  # frames replaced before anyone took them

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None and not self._taken:
                self.overwritten += 1
            self._frame = frame
            self._taken = False
            self.put_count += 1
            self._lock.notify_all()

    def get_newer(self, than_id: int) -> Frame | None:
        """The newest frame if its id is greater than `than_id`, else None."""
        with self._lock:
            frame = self._frame
            if frame is None or frame.frame_id <= than_id:
                return None
            self._taken = True
            return frame

    def wait_newer(self, than_id: int, timeout: float) -> Frame | None:
        """Like get_newer, but waits up to `timeout` seconds for such a frame."""
        with self._lock:
            self._lock.wait_for(lambda: self._frame is not None and self._frame.frame_id > than_id, timeout)
            frame = self._frame
            if frame is None or frame.frame_id <= than_id:
                return None
            self._taken = True
            return frame


class ReviewGate:
    """Review mode: the capture thread reads the next frame only once this one is on screen,
    which the display's tick allows (app.decide: once the frame's own mask is there)."""

    def __init__(self) -> None:
        self._shown = threading.Condition()
        self._released = -1  # the newest frame id the display put up

    def release(self, frame_id: int) -> None:
        """Display side: frame `frame_id` is on screen; capture may read past it."""
        with self._shown:
            self._released = frame_id
            self._shown.notify_all()

    def wait(self, frame_id: int, stopping: threading.Event) -> None:
        """Capture side: return once frame `frame_id` is released or the capture is stopping."""
        with self._shown:
            while not stopping.is_set() and self._released < frame_id:
                self._shown.wait(0.1)


class CaptureState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"  # the source reached its end
    FAULTED = "faulted"


@dataclass
class CaptureStatus:
    state: CaptureState
    message: str = ""


class CaptureThread(threading.Thread):
    """Owns a source from open to close; feeds a LatestFrame until stopped or the source ends."""

    def __init__(self, source: Source, store: LatestFrame, gate: ReviewGate | None = None):
        """gate: review mode; after each frame is stored, wait until the display put it up."""
        super().__init__(name="capture", daemon=True)
        self.source = source
        self.store = store
        self.gate = gate
        self._status = CaptureStatus(CaptureState.STOPPED)
        self._stopping = threading.Event()

    @property
    def status(self) -> CaptureStatus:
        return self._status

    def run(self) -> None:
        self._status = CaptureStatus(CaptureState.STARTING)
        try:
            if not self.source.opened:
                self.source.open()
        except EndoSpineError as exc:
            self._status = CaptureStatus(CaptureState.FAULTED, str(exc))
            return
        self._status = CaptureStatus(CaptureState.RUNNING)
        try:
            while not self._stopping.is_set():
                frame = self.source.read()
                if frame is None:
                    if not self._stopping.is_set():
                        self._status = CaptureStatus(CaptureState.ENDED, self.source.end_note() or "end of source")
                    break
                self.store.put(frame)
                if self.gate is not None:
                    self.gate.wait(frame.frame_id, self._stopping)
        except EndoSpineError as exc:  # already one line naming the source (e.g. its decoder process died)
            self._status = CaptureStatus(CaptureState.FAULTED, str(exc))
        except Exception as exc:  # noqa: BLE001 - any source failure becomes a visible state, never a dead UI
            self._status = CaptureStatus(CaptureState.FAULTED, f"{self.source.name}: {type(exc).__name__}: {exc}")
        finally:
            self.source.close()
        if self._stopping.is_set():
            self._status = CaptureStatus(CaptureState.STOPPED)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self.source.interrupt()
        if self.is_alive():
            self.join(timeout)
