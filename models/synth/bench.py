"""Speed check of the scene engine: python -m models.synth.bench [--frames N] [--sizes WxH ...]

Prints clip construction time and median ms per frame (single process) for each size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from models.synth.clip import SyntheticClip


def bench(width: int, height: int, frames: int, seeds: int) -> tuple[float, float]:
    builds, per_frame = [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        clip = SyntheticClip(seed, 0, width, height)
        builds.append(time.perf_counter() - t0)
        clip.render(0)  # warm-up
        for t in range(1, frames + 1):
            t0 = time.perf_counter()
            clip.render(t * 7)
            per_frame.append(time.perf_counter() - t0)
    return float(np.median(builds)) * 1e3, float(np.median(per_frame)) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per clip")
    ap.add_argument("--seeds", type=int, default=3, help="clips per size")
    ap.add_argument("--sizes", nargs="*", default=["512x512", "1920x1080"])
    args = ap.parse_args(argv)
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        build_ms, frame_ms = bench(w, h, args.frames, args.seeds)
        print(f"{w}x{h}: construction {build_ms:.0f} ms (median of {args.seeds}), "
              f"frame {frame_ms:.1f} ms median -> {1000.0 / frame_ms:.1f} fps")


if __name__ == "__main__":
    main()
