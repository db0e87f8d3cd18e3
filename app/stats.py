"""Running figures for the status line and the benchmark: rates over a sliding window, the trust
gate's share of results and median score."""
from __future__ import annotations

import random
import statistics
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

    The view calls on_paint() from paintEvent with the frame and mask it painted. The overlay's
    age is known only where a mask was painted, so the share of frames that had one
    (frames_with_mask / frames_displayed) goes with it: a mask hidden because it was too old
    lowers that share, not the age.
    """

    def __init__(self, stale_limit_s: float = DEFAULT_TIMING.stale_limit_s):
        self.stale_limit_s = stale_limit_s
        self.frames_displayed = 0
        self.frames_with_mask = 0        # displayed frames that had a mask painted over them at all
        self.overlay_updates = 0
        self.stale_masks_drawn = 0
        self.raw_latency_ms: list[float] = []
        self.overlay_age_ms: list[float] = []
        self.stalls_ms: list[float] = []
        self._last_frame = None
        self._last_masked_frame = None
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
        if frame_id != self._last_masked_frame:
            self._last_masked_frame = frame_id
            self.frames_with_mask += 1
        if mask_frame_id != self._last_mask:
            self._last_mask = mask_frame_id
            self.overlay_updates += 1
        age = frame_time - mask_time
        self.overlay_age_ms.append(age * 1e3)
        if age > self.stale_limit_s or age < 0 or mask_frame_id > frame_id:
            self.stale_masks_drawn += 1


class GateTally:
    """The trust gate over the results a bench or soak saw (models.core.types.Result.score/unsure).

    `see` takes the AI's newest result as often as the caller polls; each result counts once.
    `figures()`: `gated_share`, results the gate called unsure over results seen, and
    `gate_score_median`, the median of their scores; both None when no result carried a score
    (the model has no gate, or there was no AI); `gate_results`, the results seen. The median is
    exact up to `keep` scores and from a uniform sample of `keep` beyond: the scores live in one
    array allocated at the start, so a soak's memory does not grow by its own figures.
    """

    def __init__(self, keep: int = 20000):
        import numpy as np

        self.results = 0
        self.unsure = 0
        self.scored = 0
        self._scores = np.empty(keep, np.float64)
        self._rng = random.Random(0)
        self._last = None

    def start_after(self, result) -> None:
        """Count only results newer than `result` (the one already there when measuring starts)."""
        self._last = result

    def see(self, result) -> None:
        if result is None or result is self._last:
            return
        self._last = result
        self.results += 1
        self.unsure += bool(result.unsure)
        if result.score is None:
            return
        keep = len(self._scores)
        if self.scored < keep:
            self._scores[self.scored] = result.score
        elif (j := self._rng.randrange(self.scored + 1)) < keep:  # reservoir sampling
            self._scores[j] = result.score
        self.scored += 1

    def figures(self) -> dict:
        if not self.scored:
            return {"gated_share": None, "gate_score_median": None, "gate_results": self.results}
        scores = self._scores[:min(self.scored, len(self._scores))]
        return {"gated_share": round(self.unsure / self.results, 4),
                "gate_score_median": float(f"{statistics.median(scores.tolist()):.6g}"),
                "gate_results": self.results}
