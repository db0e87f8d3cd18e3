"""Scripted fake capture cards for fault injection (tests and the reliability bench; no Qt).

A FakeCard plays a timeline of steps and is itself the device factory CaptureSource takes:
`CaptureSource(settings, card)` opens `card(settings)`, a handle with cv2.VideoCapture's API
(isOpened, read, set, get, release). The card keeps its state across handles, as a real card
does across reopenings: after an Unplug the old handle is dead and new ones fail to open until
the card is plugged back in.

    card = FakeCard([Frames(30), Unplug(1.5), Frames(30, size=(96, 64), fps=25), Hang(2.0),
                     Frames(10, kind="stale"), Frames(10, kind="black"), Frames(10, clock="backwards")])

Live frames carry their card-wide sequence number (in the blue channel's first pixel and in
CAP_PROP_POS_MSEC) so that tests can check order. After the last step the card keeps
delivering live frames (after="live") or stays unplugged (after="unplugged").
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

KINDS = ("live", "black", "stale")
CLOCKS = ("ok", "repeat", "backwards")


@dataclass(frozen=True)
class Frames:
    """Deliver n frames at fps. kind: live (new content each frame), black (uniform black),
    stale (success, but the previous buffer again). clock: the device timestamps run ok, repeat
    the previous value, or jump 0.5 s backwards on every frame."""
    n: int
    size: tuple[int, int] = (64, 48)
    fps: float = 30.0
    kind: str = "live"
    clock: str = "ok"

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.clock not in CLOCKS or self.n < 0 or self.fps <= 0:
            raise ValueError(f"bad Frames step: {self}")


@dataclass(frozen=True)
class Unplug:
    """The cable is pulled for `seconds`: the open handle fails for good, opening fails until then."""
    seconds: float


@dataclass(frozen=True)
class Hang:
    """The next read() blocks in the 'driver' for `seconds`, then returns a frame."""
    seconds: float


@dataclass
class CardLog:
    """What happened, for tests and the bench (times are time.monotonic())."""
    open_attempts: list[float] = field(default_factory=list)
    opens: list[float] = field(default_factory=list)
    unplugged: list[float] = field(default_factory=list)   # when each Unplug began
    replugged: list[float] = field(default_factory=list)   # when each Unplug ended
    delivered: int = 0                                     # successful reads
    hangs: int = 0


def live_image(seq: int, size: tuple[int, int]) -> np.ndarray:
    """A BGR frame whose every sampled pixel changes with `seq` (so stale buffers are detectable)."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = seq % 256
    img[..., 1] = (np.arange(w, dtype=np.uint16) * 255 // max(1, w - 1)).astype(np.uint8)[None, :]
    img[..., 2] = 40 + (seq * 7) % 200
    return img


class FakeCard:
    """The device factory: call it with CaptureSettings to get a handle."""

    def __init__(self, steps, after: str = "live", size: tuple[int, int] = (64, 48), fps: float = 30.0):
        if after not in ("live", "unplugged"):
            raise ValueError("after must be live or unplugged")
        self.steps = list(steps)
        self.after = after
        self.log = CardLog()
        self._lock = threading.RLock()
        self._shutdown = threading.Event()
        self._index = 0          # current step
        self._done_in_step = 0   # frames delivered in the current Frames step
        self._unplug_until: float | None = None
        self._generation = 0     # bumped on unplug: older handles are dead
        self._seq = 0
        self._last: np.ndarray | None = None
        self._pos_ms = 0.0
        self._next_due: float | None = None
        self._mode = Frames(0, size, fps)  # size/fps reported by get() before the first step

    # -- the factory ------------------------------------------------------------------------
    def __call__(self, settings) -> "FakeHandle":
        with self._lock:
            now = time.monotonic()
            self.log.open_attempts.append(now)
            self._advance(now)
            plugged = self._unplug_until is None
            if plugged:
                self.log.opens.append(now)
            return FakeHandle(self, self._generation, plugged)

    def play_next(self, *steps) -> None:
        """End the current step now and play `steps` before the rest of the timeline (a test or
        the bench pulls the cable at a moment of its choosing)."""
        with self._lock:
            rest = self.steps[self._index + 1:] if self._index < len(self.steps) else []
            self.steps = self.steps[:self._index] + list(steps) + rest
            self._done_in_step = 0

    def shutdown(self) -> None:
        """Wake every sleeping read (ends a test without waiting out a Hang)."""
        self._shutdown.set()

    @property
    def step(self):
        """The step being played (None once the timeline is over)."""
        with self._lock:
            return self.steps[self._index] if self._index < len(self.steps) else None

    # -- internals (handles call these) -----------------------------------------------------
    def _advance(self, now: float) -> None:
        """Move past finished steps; an Unplug begins when reached and ends after its time."""
        while True:
            step = self.step
            if step is None:
                if self.after == "unplugged" and self._unplug_until is None:
                    self._unplug(now, float("inf"))
                return
            if isinstance(step, Unplug):
                if self._unplug_until is None:
                    self._unplug(now, now + step.seconds)
                if now < self._unplug_until:
                    return
                self._unplug_until = None
                self.log.replugged.append(now)
                self._next_due = None
            elif isinstance(step, Frames) and self._done_in_step < step.n:
                self._mode = step
                return
            elif isinstance(step, Hang):
                return
            self._index += 1
            self._done_in_step = 0

    def _unplug(self, now: float, until: float) -> None:
        self._unplug_until = until
        self._generation += 1
        self.log.unplugged.append(now)

    def _read(self, generation: int) -> tuple[bool, np.ndarray | None]:
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            if generation != self._generation or self._unplug_until is not None:
                return False, None
            step = self.step
            if isinstance(step, Hang):
                self._index += 1
                self._done_in_step = 0
                self.log.hangs += 1
                hang = step.seconds
            else:
                hang = 0.0
            mode = step if isinstance(step, Frames) else self._mode
            due = now if self._next_due is None else max(self._next_due, now)  # a late reader gets the newest at once
            self._next_due = due + 1.0 / mode.fps
        if hang:
            self._shutdown.wait(hang)
        else:
            delay = due - time.monotonic()
            if delay > 0:
                self._shutdown.wait(delay)
        with self._lock:
            if generation != self._generation:
                return False, None
            return True, self._produce(mode, counted=isinstance(step, Frames))

    def _produce(self, mode: Frames, counted: bool) -> np.ndarray:
        if counted:
            self._done_in_step += 1
        self.log.delivered += 1
        if mode.kind == "stale" and self._last is not None:
            return self._last  # the driver hands back the buffer it handed back last time
        if mode.kind == "black":
            self._stamp(mode)
            return np.zeros((mode.size[1], mode.size[0], 3), np.uint8)
        self._seq += 1
        self._stamp(mode)
        self._last = live_image(self._seq, mode.size)
        return self._last

    def _stamp(self, mode: Frames) -> None:
        if mode.clock == "ok":
            self._pos_ms += 1000.0 / mode.fps
        elif mode.clock == "backwards":
            self._pos_ms = max(0.0, self._pos_ms - 500.0)
        # "repeat": the same timestamp as the previous frame


class FakeHandle:
    """One opening of the card: the cv2.VideoCapture API."""

    def __init__(self, card: FakeCard, generation: int, opened: bool):
        self.card = card
        self.generation = generation
        self.opened = opened
        self.props: dict[int, float] = {}
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened and not self.released

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        mode = self.card._mode
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(mode.size[0])
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(mode.size[1])
        if prop == cv2.CAP_PROP_FPS:
            return float(mode.fps)
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.card._pos_ms
        return float(self.props.get(prop, 0.0))

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.isOpened():
            return False, None
        return self.card._read(self.generation)

    def release(self) -> None:
        self.released = True
