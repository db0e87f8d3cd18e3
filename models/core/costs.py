"""What each per-frame stage costs, counted where it runs: `endospine bench` reports it.

Every process has one `STAGES` ledger. A stage adds its wall time and the CPU time of the
thread that ran it (time.thread_time) on every call; `snapshot()` gives the totals so far and
`per_call(after, before)` the mean per call between two snapshots. A child process sends its
snapshot to the parent (the decoder child in its Costs message, the AI worker its per-frame
timings), so the bench can put the decoder's, the display's and the worker's stages side by side.

CPU time is the calling thread's: work a library spreads over its own threads (FFmpeg's frame
threads, OpenCV's parallel resize) is in its process's total (`process_cpu_s`) but not all in the
stage's figure; the wall time then says what the stage cost the thread that waited for it.
Counting costs about a microsecond a call.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

Totals = dict[str, tuple[int, float, float]]  # stage -> (calls, wall seconds, thread CPU seconds)


class StageLedger:
    def __init__(self) -> None:
        self._totals: dict[str, list] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            row = self._totals.get(stage)
            if row is None:
                self._totals[stage] = [1, wall_s, cpu_s]
            else:
                row[0] += 1
                row[1] += wall_s
                row[2] += cpu_s

    @contextmanager
    def measure(self, stage: str):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu)

    def snapshot(self) -> Totals:
        with self._lock:
            return {stage: (row[0], row[1], row[2]) for stage, row in self._totals.items()}

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()


STAGES = StageLedger()


def per_call(after: Totals, before: Totals | None = None) -> dict[str, dict[str, float]]:
    """Mean wall and thread-CPU milliseconds per call of each stage between two snapshots."""
    out = {}
    for stage, (calls, wall, cpu) in sorted(after.items()):
        c0, w0, p0 = (before or {}).get(stage, (0, 0.0, 0.0))
        n = calls - c0
        if n > 0:
            out[stage] = {"calls": n, "wall_ms": round((wall - w0) / n * 1e3, 3),
                          "cpu_ms": round((cpu - p0) / n * 1e3, 3)}
    return out


def process_cpu_s(pid: int | None = None) -> float | None:
    """CPU seconds (user + system, all threads) a process has used: this one (None) or another
    process of ours by pid (Linux /proc; None where that cannot be read, e.g. the process is gone)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
