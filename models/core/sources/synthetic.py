"""`synthetic[:SEED][?width=&height=]`: live frames from the synthetic scene engine (models.synth)
at a fixed rate, for demos, tests and the calibration self-test."""
from __future__ import annotations

import time
from urllib.parse import parse_qsl

import numpy as np

from models.core.errors import EndoSpineError
from models.core.sources.base import Source
from models.core.types import Frame

SYNTHETIC_SIZE = (960, 540)


class SyntheticSource(Source):
    """Live frames from the synthetic scene engine at a fixed rate."""

    def __init__(self, seed: int = 0, width: int = SYNTHETIC_SIZE[0], height: int = SYNTHETIC_SIZE[1],
                 fps: float = 30.0):
        super().__init__()
        self.seed = seed
        self.name = f"synthetic:{seed}"
        self.fps = fps
        self.size = (width, height)
        self._clip = None
        self._t0: float | None = None

    @classmethod
    def from_spec(cls, spec: str) -> "SyntheticSource":
        """`synthetic[:SEED][?width=W&height=H]` (seed 0 and 960x540 when not given)."""
        head, _, query = spec.partition("?")
        _, _, seed = head.partition(":")
        try:
            opts = {k: int(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
            size = opts.pop("width", SYNTHETIC_SIZE[0]), opts.pop("height", SYNTHETIC_SIZE[1])
            if opts:
                raise EndoSpineError(f"{spec}: unknown option(s) {', '.join(sorted(opts))}")
            return cls(int(seed or 0), *size)
        except ValueError:
            raise EndoSpineError(f"{spec}: expected synthetic[:SEED][?width=W&height=H] with whole numbers") from None

    def open(self) -> None:
        from models.synth import SyntheticClip  # the engine is heavy to import; only when used

        self._clip = SyntheticClip(self.seed, 0, *self.size)
        self._t0 = None
        self.opened = True

    def image_at(self, t: int) -> np.ndarray:
        """Frame number t of the clip, in any order (after open())."""
        return self._clip.render(t)[0]

    def read(self) -> Frame | None:
        t = self._next_id
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + t / self.fps)):
            return None
        return self._frame(self.image_at(t), t / self.fps)
