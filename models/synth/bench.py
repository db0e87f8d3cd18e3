"""Speed check of the scene engine: python -m models.synth.bench [--frames N] [--sizes WxH ...] [--workers W]

Single process (default): clip construction time and median ms per frame for each size.
--workers W: W processes render W clips side by side (each its own world, --frames frames each),
as `synth --video` and dataset generation do; prints frames/s of the whole pool, with and without
the clips' construction. Medians over --repeats runs.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
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


def _render_clip(task: tuple) -> tuple[float, float]:
    """(construction s, rendering s) of one clip in a worker process."""
    seed, clip, width, height, frames = task
    t0 = time.perf_counter()
    scene = SyntheticClip(seed, clip, width, height)
    t1 = time.perf_counter()
    for t in range(frames):
        scene.render(t)
    return t1 - t0, time.perf_counter() - t1


def bench_pool(width: int, height: int, frames: int, workers: int, repeats: int) -> tuple[float, float]:
    """(frames/s including construction, frames/s of rendering alone): medians over `repeats`."""
    with_build, render_only = [], []
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_render_clip, [(99, w, 64, 64, 1) for w in range(workers)])   # start-up and imports
        for r in range(repeats):
            tasks = [(r, w, width, height, frames) for w in range(workers)]
            t0 = time.perf_counter()
            times = pool.map(_render_clip, tasks, chunksize=1)
            wall = time.perf_counter() - t0
            total = workers * frames
            with_build.append(total / wall)
            render_only.append(total / max(rend for _, rend in times))
    return float(np.median(with_build)), float(np.median(render_only))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per clip")
    ap.add_argument("--seeds", type=int, default=3, help="clips per size (single process)")
    ap.add_argument("--sizes", nargs="*", default=["512x512", "1920x1080"])
    ap.add_argument("--workers", type=int, default=1, help="processes rendering side by side (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the pool, median reported (default 3)")
    args = ap.parse_args(argv)
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        if args.workers > 1:
            fps_all, fps_render = bench_pool(w, h, args.frames, args.workers, args.repeats)
            print(f"{w}x{h}, {args.workers} processes, {args.frames} frames per clip: {fps_render:.1f} frames/s "
                  f"rendering, {fps_all:.1f} frames/s with construction (medians of {args.repeats})")
        else:
            build_ms, frame_ms = bench(w, h, args.frames, args.seeds)
            print(f"{w}x{h}: construction {build_ms:.0f} ms (median of {args.seeds}), "
                  f"frame {frame_ms:.1f} ms median -> {1000.0 / frame_ms:.1f} fps")


if __name__ == "__main__":
    main()
