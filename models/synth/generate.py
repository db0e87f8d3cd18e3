"""Turning the scene engine into files: a labeled dataset, or a video with per-frame labels.

Both use a process pool (one clip world per worker, cached), so every core renders; the
output is identical whatever the number of workers, because each frame depends only on
(seed, clip, t).
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable, default_classes
from models.core.errors import EndoSpineError
from models.core.imageio import encode_image, write_bytes_atomic, write_label
from models.core.video import VideoWriter
from models.core.yamlio import dump_yaml
from models.dataset import Item, StagedDir, split_by_clip, write_meta, write_splits
from models.synth import SyntheticClip

ENGINE = "endospine-synth/2"
_clips: dict[tuple, SyntheticClip] = {}


def _clip(seed: int, clip: int, width: int, height: int) -> SyntheticClip:
    key = (seed, clip, width, height)
    if key not in _clips:
        _clips.clear()  # one world per worker at a time keeps memory flat
        _clips[key] = SyntheticClip(seed, clip, width, height)
    return _clips[key]


def clip_name(clip: int) -> str:
    return f"c{clip:03d}"


# -- dataset ---------------------------------------------------------------------------------
def _render_clip_frames(task: tuple) -> list[dict]:
    root, seed, clip, width, height, frames, stride, quality = task
    scene = _clip(seed, clip, width, height)
    name = clip_name(clip)
    items = []
    for k in range(frames):
        t = k * stride
        rgb, labels = scene.render(t)
        q = int(np.random.default_rng([seed, clip, t, 0x4A50]).integers(quality[0], quality[1] + 1))
        stem = f"{name}_t{t:06d}"
        write_bytes_atomic(Path(root) / "images" / f"{stem}.jpg", encode_image(rgb, ".jpg", q))
        write_label(Path(root) / "labels" / f"{stem}.png", labels)
        items.append(asdict(Item(f"images/{stem}.jpg", f"labels/{stem}.png", name, t, "synthetic")))
    return items


def generate_dataset(out: str | Path, *, clips: int = 60, frames: int = 50, width: int = 512, height: int = 512,
                     seed: int = 0, stride: int = 8, workers: int = 2, ratios=(0.8, 0.1, 0.1),
                     jpeg_quality: tuple[int, int] = (75, 95), classes: ClassTable | None = None,
                     progress: bool = True) -> Path:
    """Render `clips` scenes of `frames` frames each (every `stride`-th frame of the clip)."""
    _check_counts(clips=clips, frames=frames, stride=stride, workers=workers)
    classes = classes or default_classes()
    with StagedDir(out) as tmp:
        tasks = [(str(tmp), seed, c, width, height, frames, stride, jpeg_quality) for c in range(clips)]
        items: list[Item] = []
        with _pool(workers) as pool, tqdm(total=clips * frames, unit="frame", desc="synth",
                                          disable=not progress) as bar:
            for recs in pool.imap(_render_clip_frames, tasks):
                items.extend(Item(**r) for r in recs)
                bar.update(len(recs))
        splits = split_by_clip(items, ratios, seed)
        write_splits(tmp, splits)
        write_meta(tmp, classes, items, name=f"synthetic-lumbar-s{seed}", extra={"generator": {
            "engine": ENGINE, "seed": seed, "clips": clips, "frames_per_clip": frames,
            "stride": stride, "size": [width, height], "jpeg_quality": list(jpeg_quality)}})
    return Path(out)


# -- video -----------------------------------------------------------------------------------
def _render_frame(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    seed, clip, width, height, t = task
    return _clip(seed, clip, width, height).render(t)


def generate_video(video: str | Path, labels_out: str | Path, *, width: int = 1920, height: int = 1080,
                   fps: float = 30.0, frames: int = 600, seed: int = 0, clip: int = 0, workers: int = 2,
                   crf: int = 23, progress: bool = True) -> Path:
    """One continuous clip as an H.264 video, with a label PNG per frame in `labels_out`."""
    _check_counts(frames=frames, workers=workers)
    if not 1 <= fps <= 240:
        raise EndoSpineError(f"--fps {fps}: expected 1..240")
    classes = default_classes()
    with StagedDir(labels_out) as tmp, VideoWriter(video, width, height, fps, crf=crf, preset="slow") as writer:
        (tmp / "labels").mkdir()
        tasks = [(seed, clip, width, height, t) for t in range(frames)]
        with _pool(workers) as pool:
            frames_iter = pool.imap(_render_frame, tasks, chunksize=4)
            for t, (rgb, labels) in enumerate(tqdm(frames_iter, total=frames, unit="frame", desc="video",
                                                    disable=not progress)):
                writer.write(rgb)
                write_label(tmp / "labels" / f"{t:06d}.png", labels)
        meta = {"format": "endospine-video-labels/1", "video": Path(video).name, "fps": fps,
                "resolution": [width, height], "frames": frames, "classes": classes.to_dict(),
                "generator": {"engine": ENGINE, "seed": seed, "clip": clip},
                "labels": "labels/%06d.png (frame index, 0-based)"}
        (tmp / "video.yaml").write_text(dump_yaml(meta), encoding="utf-8")
    return Path(video)


# -- helpers ---------------------------------------------------------------------------------
class _InlinePool:
    """The Pool interface for workers=1 (no processes: easier to debug and profile)."""

    def imap(self, fn, tasks, chunksize=1):
        return map(fn, tasks)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _pool(workers: int):
    if workers <= 1:
        return _InlinePool()
    return mp.get_context("spawn").Pool(workers)


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise EndoSpineError(f"--{name} {value}: expected a positive whole number")
