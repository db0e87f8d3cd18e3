"""Glass-to-glass latency by loopback.

`endospine pattern` (a separate process: calibration never imports the app or Qt) shows the
loopback pattern full screen, redrawn every display refresh with a frame counter and the
CLOCK_MONOTONIC milliseconds at which it was drawn (models/core/optics/loopback.py). A camera films that
screen and feeds the capture card; every captured frame is stamped with CLOCK_MONOTONIC when it
reaches us, and its latency is that stamp minus the time read from the pattern in it.

What it measures: from the moment the app draws a frame to the moment the same machine
receives the camera's picture of it = display latency + camera exposure and readout + capture
card and driver. The surgeon's glass-to-glass path (scope camera -> capture -> app -> display)
has the same parts in the other order (plus the app's own processing, which `endospine bench`
measures). Includes up to one display refresh of pattern age (half on average).

Assumption: one clock. CLOCK_MONOTONIC (Python's time.monotonic on Linux) is system-wide, so
two processes on one machine read the same clock; the pattern window and this tool must run on
the same computer.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from models.core.errors import EndoSpineError
from models.core.optics.loopback import decode

MAX_LATENCY_MS = 5000.0     # anything older is a stale pattern (the window stopped), not a latency


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p95_ms: float
    max_ms: float
    min_ms: float
    samples: int           # frames whose pattern was read
    frames: int            # frames looked at
    display_frames: int    # distinct display frames seen (by counter)
    values: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)  # every latency (ms)

    def summary(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "values"}


class LatencyMeter:
    """Feed it (frame, arrival time) pairs; it reads the pattern and keeps the latencies."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.counters: set[int] = set()
        self.frames = 0

    def add(self, rgb: np.ndarray, arrived_s: float) -> float | None:
        """The latency (ms) of one captured frame, or None when no pattern could be read in it."""
        self.frames += 1
        code = decode(rgb)
        if code is None:
            return None
        age = (arrived_s * 1000.0 - code.time_ms) % 2 ** 32          # the stamp wraps every 49.7 days
        if age > MAX_LATENCY_MS:
            return None
        self.latencies.append(age)
        self.counters.add(code.counter)
        return age

    def stats(self) -> LatencyStats:
        if not self.latencies:
            raise EndoSpineError(f"the pattern was not read in any of {self.frames} frames: is the camera filming "
                                 "the `endospine pattern` window, in focus, the whole pattern in view?")
        v = np.asarray(self.latencies)
        return LatencyStats(float(np.percentile(v, 50)), float(np.percentile(v, 95)), float(v.max()), float(v.min()),
                            len(v), self.frames, len(self.counters), v)


def measure(frames: Iterable[tuple[np.ndarray, float]], seconds: float, progress=None) -> LatencyStats:
    """Read frames (image, arrival time in monotonic seconds) for `seconds` of arrival time;
    progress(meter, elapsed_s) after each frame."""
    meter = LatencyMeter()
    start = None
    for rgb, t in frames:
        start = t if start is None else start
        if t - start > seconds:
            break
        meter.add(rgb, t)
        if progress is not None:
            progress(meter, t - start)
    return meter.stats()


def launch_pattern(screen: int | None = None, windowed: bool = False) -> subprocess.Popen:
    """Start `endospine pattern` as its own process (it exits when we terminate it)."""
    cmd = [sys.executable, "-m", "app.cli", "pattern"]
    if screen is not None:
        cmd += ["--screen", str(screen)]
    if windowed:
        cmd.append("--windowed")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 2.0     # the window needs a moment to appear on the screen
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            raise EndoSpineError(f"the pattern window did not start ({err[-1] if err else f'exit {proc.returncode}'})")
        time.sleep(0.05)
    return proc


def stop_pattern(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3.0)
