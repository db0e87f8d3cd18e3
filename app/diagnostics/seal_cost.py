"""What encrypting a recording costs: `python -m app.diagnostics.seal_cost [--frames N] [--size 1920x1080]`.

Writes the same frames into two recordings with the recorder's settings (models.core.deid's
DeidPolicy.video_writer: H.264 with app.recorder.PRESET, crf 18, fragmented MP4, one keyframe a
second), one plain and one encrypted (models/core/sealed.py), frame by frame alternately in one
run (the machine's load hits both alike), and times each write() (encode + mux + encrypt) and the
time spent inside the encrypting file object (AES-256-GCM and its file writes). Prints one JSON
line: medians in ms per frame, the encryption's share, and the bytes written per frame.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from app.recorder import PRESET
from models.core import sealed
from models.core.cliutil import positive_int, run
from models.core.deid import DeidPolicy
from models.core.video import parse_resolution


def _frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """A gradient with texture and a moving block: real motion and a recording-like bitrate."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 90)], -1).astype(np.int16)
    texture = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    out = []
    for t in range(count):
        img = np.clip(base + np.roll(texture, 7 * t, axis=1), 0, 255).astype(np.uint8)
        x0 = (t * 23) % (width - width // 8)
        img[height // 3:height // 2, x0:x0 + width // 8] = 230
        out.append(img)
    return out


class _Timed:
    """Wraps SealedWriter.write to add up the time spent in it (encryption and its file writes)."""

    def __init__(self, write):
        self.write, self.seconds = write, 0.0

    def __call__(self, writer, data):
        t = time.perf_counter()
        try:
            return self.write(writer, data)
        finally:
            self.seconds += time.perf_counter() - t


def measure(frames: int = 150, size: tuple[int, int] = (1920, 1080), distinct: int = 30) -> dict:
    w, h = size
    images = _frames(distinct, w, h)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = DeidPolicy(keep_full_frame=True)
        locked = DeidPolicy(keep_full_frame=True, key=sealed.new_key())
        opts = dict(preset=PRESET, crf=18, fragmented=True, gop=30, atomic=False)  # the recorder's
        real = sealed.SealedWriter.write
        timed = _Timed(real)
        # PyAV takes the sink's bound write when it opens it: time the class's method from before then
        sealed.SealedWriter.write = lambda self, data: timed(self, data)
        writers = {"plain": plain.video_writer(folder / "plain.mp4", w, h, 30.0, **opts),
                   "encrypted": locked.video_writer(folder / "enc.mp4", w, h, 30.0, **opts)}
        times: dict[str, list[float]] = {"plain": [], "encrypted": []}
        seal_per_frame: list[float] = []
        try:
            for i in range(frames):
                order = ("plain", "encrypted") if i % 2 == 0 else ("encrypted", "plain")
                for name in order:
                    before = timed.seconds
                    t = time.perf_counter()
                    writers[name].write(images[i % distinct])
                    times[name].append(time.perf_counter() - t)
                    if name == "encrypted":
                        seal_per_frame.append(timed.seconds - before)
            for writer in writers.values():
                writer.close()
        finally:
            sealed.SealedWriter.write = real
        sizes = {"plain": (folder / "plain.mp4").stat().st_size, "encrypted": (folder / "enc.mp4.enc").stat().st_size}
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {"frames": frames, "size": f"{w}x{h}", "write_ms_median_plain": round(med["plain"], 2),
            "write_ms_median_encrypted": round(med["encrypted"], 2),
            "difference_ms": round(med["encrypted"] - med["plain"], 2),
            "encrypt_ms_per_frame_mean": round(timed.seconds / frames * 1000, 3),
            "encrypt_ms_per_frame_max": round(max(seal_per_frame) * 1000, 3),
            "kb_per_frame": round(sizes["plain"] / frames / 1024, 1),
            "encrypted_size_overhead": round(sizes["encrypted"] / sizes["plain"] - 1, 5),
            "encrypt_mb_per_s": round(sizes["encrypted"] / 1e6 / timed.seconds, 1) if timed.seconds else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.diagnostics.seal_cost", description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=positive_int, default=150, help="frames written to each recording (default 150)")
    p.add_argument("--size", type=parse_resolution, default=(1920, 1080), metavar="WxH", help="default 1920x1080")
    p.set_defaults(func=lambda args: print(json.dumps(measure(args.frames, args.size))) or 0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
