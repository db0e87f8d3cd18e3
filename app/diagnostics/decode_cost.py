"""What decoding in a child process costs: `python -m app.diagnostics.decode_cost [--frames N] [--size 1920x1080]`.

Writes a short H.264 clip, then reads it as fast as possible with the in-process VideoSource
and with IsolatedVideoSource, alternately in one run (the machine's load hits both alike), and
times the two extra copies (into a shared-memory slot in the child, out of it in the display).
Prints one JSON line: medians in ms per frame and the display process's CPU ms per frame.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path
from typing import Sequence

import numpy as np

from models.core.cliutil import positive_int, run
from models.core.errors import EndoSpineError
from models.core.sources.isolated import IsolatedVideoSource
from models.core.sources.replay import ReplaySource
from models.core.sources.video import VideoSource
from models.core.video import VideoWriter


def _clip(folder: Path, frames: int, width: int, height: int) -> Path:
    """A gradient with a moving bright block: cheap to make, real motion for the codec."""
    path = folder / f"clip_{width}x{height}.mp4"
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 90)], -1).astype(np.uint8)
    with VideoWriter(path, width, height, 30, crf=23, preset="ultrafast") as writer:
        for t in range(frames):
            img = base.copy()
            x0 = (t * 9) % (width - width // 8)
            img[height // 3:height // 2, x0:x0 + width // 8] = 255
            writer.write(img)
    return path


def _read_times(source: ReplaySource, warmup: int = 5) -> tuple[list[float], float]:
    """Seconds per read() (after warm-up) and the process's CPU seconds per frame."""
    source.open()
    times: list[float] = []
    cpu0 = time.process_time()
    try:
        while True:
            t = time.perf_counter()
            frame = source.read()
            if frame is None:
                break
            times.append(time.perf_counter() - t)
    finally:
        source.close()
    return times[warmup:], (time.process_time() - cpu0) / max(1, len(times))


def _copy_times(width: int, height: int, n: int = 300) -> tuple[list[float], list[float]]:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    shm = shared_memory.SharedMemory(create=True, size=image.nbytes)
    try:
        view = np.ndarray(image.shape, np.uint8, shm.buf)
        into, out = [], []
        for _ in range(n):
            t = time.perf_counter()
            view[:] = image
            into.append(time.perf_counter() - t)
            t = time.perf_counter()
            view.copy()
            out.append(time.perf_counter() - t)
        del view
    finally:
        shm.close()
        shm.unlink()
    return into, out


def measure(frames: int = 150, width: int = 1920, height: int = 1080, rounds: int = 2) -> dict:
    ms = lambda values: round(statistics.median(values) * 1000, 2)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp), frames, width, height)
        reads: dict[str, list[float]] = {"in_process": [], "child_process": []}
        cpu: dict[str, list[float]] = {"in_process": [], "child_process": []}
        for _ in range(rounds):
            for key, cls in (("in_process", VideoSource), ("child_process", IsolatedVideoSource)):
                times, cpu_per_frame = _read_times(cls(clip, realtime=False))
                reads[key] += times
                cpu[key].append(cpu_per_frame)
    into, out = _copy_times(width, height)
    return {"size": f"{width}x{height}", "frames_timed": {k: len(v) for k, v in reads.items()},
            "read_ms_median": {k: ms(v) for k, v in reads.items()},
            "display_cpu_ms_per_frame": {k: round(statistics.median(v) * 1000, 2) for k, v in cpu.items()},
            "copy_into_slot_ms_median": ms(into), "copy_out_of_slot_ms_median": ms(out)}


def _cmd(args: argparse.Namespace) -> int:
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise EndoSpineError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080, got {args.size!r}") from None
    print(json.dumps(measure(args.frames, width - width % 2, height - height % 2)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.diagnostics.decode_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=positive_int, default=150)
    parser.add_argument("--size", default="1920x1080")
    parser.set_defaults(func=_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
