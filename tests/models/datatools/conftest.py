"""Tiny datasets, sources and videos for the dataset tools, made at test time."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.core.classes import ClassInfo, ClassTable
from models.core.imageio import write_image, write_label
from models.dataset import Item, StagedDir, write_meta, write_splits

LUMBAR = ClassTable((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "bone", (64, 170, 255)),
                     ClassInfo(2, "ligament", (0, 220, 120)), ClassInfo(3, "disc", (200, 80, 255))),
                    name="test-lumbar")
POLYP_YAML = """name: polyp
ignore_index: 255
classes:
  - {id: 0, name: background, color: [0, 0, 0]}
  - {id: 1, name: polyp, color: [255, 80, 80]}
"""


def picture(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def stripes(h: int = 24, w: int = 32) -> np.ndarray:
    """A label map with every lumbar class: four vertical bands 0,1,2,3."""
    return np.repeat((np.arange(w) * 4 // w).astype(np.uint8)[None, :], h, axis=0)


def make_dataset(root: Path, clips: int = 4, per_clip: int = 3, classes: ClassTable = LUMBAR) -> list[Item]:
    """A valid dataset: clips c0..cN with per_clip frames each, split by clip into train/val/test."""
    items = [Item(f"images/c{c}_{k}.png", f"labels/c{c}_{k}.png", f"c{c}", k, "real")
             for c in range(clips) for k in range(per_clip)]
    with StagedDir(root) as tmp:
        for n, it in enumerate(items):
            write_image(tmp / it.image, picture(n))
            write_label(tmp / it.label, stripes())
        by_clip = {"train": [i for i in items if i.clip in ("c0", "c1")],
                   "val": [i for i in items if i.clip == "c2"], "test": [i for i in items if i.clip == "c3"]}
        write_splits(tmp, by_clip)
        write_meta(tmp, classes, items, name=root.name)
    return items


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_dataset(root)
    return root


@pytest.fixture
def polyp_classes(tmp_path) -> Path:
    path = tmp_path / "polyp.yaml"
    path.write_text(POLYP_YAML, encoding="utf-8")
    return path


# -- a video with known good, blurred, duplicate, dark and blown-out frames --------------------
W, H = 192, 144


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured warm disc on black: a stand-in for one endoscope view."""
    base = np.random.default_rng(seed).random((18, 24, 3)).astype(np.float32)
    img = np.clip(cv2.resize(base, (W, H), interpolation=cv2.INTER_CUBIC), 0, 1)
    img = img * np.array([200, 120, 80], np.float32) + np.array([40, 30, 20], np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    fov = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) <= (0.46 * H) ** 2
    img[~fov] = 0
    return img.astype(np.uint8), fov


def quality_frames() -> tuple[list[np.ndarray], dict[str, list[int]]]:
    """Ten frames and which of them extract must keep or drop (with --every 1 --min-sharpness 50)."""
    (a, fov), (b, _), (c, _), (d, _) = (_scene(s) for s in (1, 2, 3, 4))

    def blur(img, sigma):
        return np.where(fov[..., None], cv2.GaussianBlur(img, (0, 0), sigma), 0).astype(np.uint8)

    white = np.where(fov[..., None], 255, 0).repeat(3, axis=2).astype(np.uint8)
    frames = [a, a, a, blur(a, 4), b, blur(b, 1), (c * 0.05).astype(np.uint8), c, white, d]
    expect = {"kept": [0, 4, 7, 9], "duplicate": [1, 2, 5], "blurry": [3], "dark": [6], "bright": [8]}
    return frames, expect


@pytest.fixture(scope="session")
def quality_video(tmp_path_factory) -> Path:
    from models.core.video import VideoWriter

    path = tmp_path_factory.mktemp("extract") / "case 01.mp4"   # a space: the clip id must be made safe
    frames, _ = quality_frames()
    with VideoWriter(path, W, H, fps=10, crf=0, preset="ultrafast") as writer:  # crf 0: no codec noise
        for f in frames:
            writer.write(f)
    return path
