"""Shared fixtures. Qt runs offscreen unless a display is asked for explicitly."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def moving_pattern(t: int, width: int, height: int) -> np.ndarray:
    """A cheap, deterministic test frame: a gradient with a bright square that moves with t."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    np.full_like(x, (t * 7) % 256)], axis=-1).astype(np.uint8)
    s = max(4, min(width, height) // 6)
    x0 = (t * 3) % max(1, width - s)
    img[height // 3:height // 3 + s, x0:x0 + s] = 255
    return img


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> "os.PathLike":
    """A 2-second 160x120 H.264 MP4 at 15 fps of the synthetic scene engine, written once per run."""
    from models.core.video import VideoWriter
    from models.synth import SyntheticClip

    path = tmp_path_factory.mktemp("video") / "small.mp4"
    clip = SyntheticClip(seed=5, clip=0, width=160, height=120)
    with VideoWriter(path, 160, 120, fps=15, crf=18, preset="ultrafast") as writer:
        for t in range(30):
            writer.write(clip.render(t)[0])
    return path


@pytest.fixture(scope="session")
def pattern_video(tmp_path_factory):
    """Factory: a video of moving_pattern frames with a chosen size, pixel format and codec."""
    from models.core.video import VideoWriter

    made = {}

    def make(width=64, height=48, frames=20, fps=25.0, pix_fmt="yuv420p", codec="libx264", suffix=".mp4"):
        key = (width, height, frames, fps, pix_fmt, codec, suffix)
        if key not in made:
            path = tmp_path_factory.mktemp("pattern") / f"p_{width}x{height}_{pix_fmt}_{codec}{suffix}"
            crf = 18 if codec.startswith("libx26") else None
            with VideoWriter(path, width, height, fps, codec=codec, pix_fmt=pix_fmt, crf=crf, preset="ultrafast") as w:
                for t in range(frames):
                    w.write(moving_pattern(t, width, height))
            made[key] = path
        return made[key]

    return make


def export_tiny_model(folder, onnx: bool = False):
    """Export an untrained (seeded) liteseg-cpu model at 128x128 with the lumbar class table into
    `folder` (with model.onnx if asked); returns the folder."""
    from models.core.classes import default_classes
    from models.core.runtime.preprocess import Preprocess
    from models.export import write_model_folder
    from models.nets import build_model
    from models.nets.layers import paddle

    paddle.seed(0)
    net = build_model("liteseg-cpu", len(default_classes()))
    net.eval()
    write_model_folder(net, "liteseg-cpu", default_classes(), Preprocess((128, 128)), folder, onnx=onnx,
                       notice="untrained test model")
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An exported, untrained (seeded) liteseg-cpu model at 128x128 with the lumbar class table."""
    return export_tiny_model(tmp_path_factory.mktemp("tiny-model"))
