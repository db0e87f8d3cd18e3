"""Running figures for the status line and the benchmark: rates over a sliding window."""
from __future__ import annotations

import time
from collections import deque

from models.core.timing import DEFAULT_TIMING


class RateMeter:
    """Events per second over the last `window` seconds, and the count of all events (`total`)."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self.total = 0
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.total += 1
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()


def percentiles(values, qs=(50, 95, 99)) -> dict[str, float]:
    import numpy as np

    if not values:
        return {f"p{q}": float("nan") for q in qs} | {"max": float("nan")}
    arr = np.asarray(values, dtype=float)
    out = {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs}
    out["max"] = round(float(arr.max()), 2)
    return out


class PaintProbe:
    """What the screen actually showed, measured at paint time (for `endospine bench`).

    The view calls on_paint() from paintEvent with the frame and mask it painted.
    """

    def __init__(self, stale_limit_s: float = DEFAULT_TIMING.stale_limit_s):
        self.stale_limit_s = stale_limit_s
        self.frames_displayed = 0
        self.overlay_updates = 0
        self.stale_masks_drawn = 0
        self.raw_latency_ms: list[float] = []
        self.overlay_age_ms: list[float] = []
        self.stalls_ms: list[float] = []
        self._last_frame = None
        self._last_mask = None
        self._last_new_paint: float | None = None

    def on_paint(self, now: float, frame_id: int, frame_time: float,
                 mask_frame_id: int | None = None, mask_time: float | None = None) -> None:
        if frame_id != self._last_frame:
            self._last_frame = frame_id
            self.frames_displayed += 1
            self.raw_latency_ms.append((now - frame_time) * 1e3)
            if self._last_new_paint is not None:
                self.stalls_ms.append((now - self._last_new_paint) * 1e3)
            self._last_new_paint = now
        if mask_frame_id is None or mask_time is None:
            return
        if mask_frame_id != self._last_mask:
            self._last_mask = mask_frame_id
            self.overlay_updates += 1
        age = frame_time - mask_time
        self.overlay_age_ms.append(age * 1e3)
        if age > self.stale_limit_s or age < 0 or mask_frame_id > frame_id:
            self.stale_masks_drawn += 1
