"""The display's timing rules in one place: when the picture stops being live, when a mask is too
old to paint, when a child process is declared hung, how the AI worker is restarted.

Every rule has a default measured or argued in the README; an endoscope profile may override any
of them in its `timing:` section (a tower whose card is slow to wake, a model that loads slowly):

    timing: {no_signal_after_s: 0.6, stale_limit_s: 0.1}

Values are checked on construction (ValueError 'field: problem'), so a bad profile is refused in
one line like any other profile field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Timing:
    # the picture: is what the screen shows still live?
    no_signal_after_s: float = 0.4         # no new frame for this long (or no_signal_intervals frame
    no_signal_intervals: float = 2.5       #   intervals if longer): NO SIGNAL
    lagged_paint_s: float = 0.05           # a paint this late after its frame was set: the GUI stalled
    # the overlay: a mask only over its own frame or one at most this much newer
    stale_limit_s: float = 0.120
    # capture cards: a read() longer than max(card_hang_min_s, card_hang_intervals frame intervals) is a hang
    card_hang_min_s: float = 0.5
    card_hang_intervals: float = 4.0
    card_reconnect_every_s: float = 1.0
    # the decoder child process (video files)
    decoder_open_timeout_s: float = 30.0
    decoder_hang_s: float = 5.0            # playing, and no progress for this long (or decoder_hang_intervals
    decoder_hang_intervals: float = 3.0    #   frame intervals if longer): the decoder is hung. Progress: a
                                           #   frame, packets read, or a frame waiting for its time (a still)
    # the AI worker child process
    ai_load_timeout_s: float = 120.0
    ai_hang_timeout_s: float = 2.0         # no answer this long after a frame: the worker is hung
    ai_delayed_after_s: float = 0.25       # frame-to-result latency above this: state DELAYED
    ai_failure_window_s: float = 60.0      # ai_max_failures within this window: AI UNAVAILABLE
    ai_max_failures: int = 4
    ai_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if f.name == "ai_backoff_s" and not values:
                raise ValueError("ai_backoff_s: at least one delay")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    raise ValueError(f"{f.name}: must be a positive finite number, got {v!r}")
                if v > 3600:
                    raise ValueError(f"{f.name}: {v!r} is more than an hour")

    def no_signal_limit(self, fps: float) -> float:
        """Seconds without a new frame after which a source running at `fps` is not live."""
        return max(self.no_signal_after_s, self.no_signal_intervals / fps) if fps > 0 else self.no_signal_after_s

    def card_hang_after(self, fps: float) -> float:
        """A capture card's read() taking longer than this is a hang, not a slow frame."""
        return max(self.card_hang_min_s, self.card_hang_intervals / fps) if fps > 0 else self.card_hang_min_s

    def decoder_hang_after(self, fps: float) -> float:
        """Seconds without progress from a playing decoder child after which it is hung: no frame, no
        packet read, and no frame held for its time on the file's clock (a still is not a hang)."""
        return max(self.decoder_hang_s, self.decoder_hang_intervals / fps) if fps > 0 else self.decoder_hang_s

    def to_dict(self) -> dict:
        """Only the fields that differ from the defaults (what a profile needs to store)."""
        base = Timing()
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in fields(self) if (v := getattr(self, f.name)) != getattr(base, f.name)}

    @classmethod
    def from_dict(cls, d: Any) -> "Timing":
        """Raises ValueError('field: problem') for unknown fields and bad values."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError("must be a mapping of timing rules")
        known = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"{sorted(map(str, unknown))[0]}: unknown timing rule")
        values: dict[str, Any] = {}
        for key, value in d.items():
            if key == "ai_backoff_s":
                if not isinstance(value, (list, tuple)):
                    raise ValueError("ai_backoff_s: a list of seconds")
                value = tuple(value)
            elif key == "ai_max_failures":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"ai_max_failures: a whole number, got {value!r}")
            values[key] = value
        return replace(cls(), **values)


DEFAULT_TIMING = Timing()
