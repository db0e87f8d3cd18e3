"""Fixtures shared by the model-side tests (training, evaluation, reader study)."""
from __future__ import annotations

import pytest
import yaml

from models.cli import main


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A rendered synthetic dataset: 3 clips x 2 frames, 128x128, test split = 2 clips (4 images)."""
    out = tmp_path_factory.mktemp("tiny-synth") / "data"
    assert main(["synth", "--out", str(out), "--clips", "3", "--frames", "2", "--size", "128", "--seed", "4",
                 "--workers", "1", "--ratios", "0.34,0,0.66"]) == 0
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny trained run and its exported model (with its trust gate): synth -> train 4 steps ->
    export. Returns (data, run, model); rebuilt per module, so a module may change them."""
    root = tmp_path_factory.mktemp("pipe")
    data, run, model = root / "data", root / "run", root / "model"
    assert main(["synth", "--out", str(data), "--clips", "5", "--frames", "2", "--size", "160", "--seed", "3",
                 "--workers", "1", "--ratios", "0.6,0.2,0.2"]) == 0
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"input_size": 128, "batch_size": 2, "eval_every": 3, "log_every": 1,
                                   "warmup_iters": 1, "workers": 0, "augment": {"crop": 128}}))
    assert main(["train", "--data", str(data), "--out", str(run), "--config", str(cfg), "--iters", "4"]) == 0
    assert main(["export", str(run), "--out", str(model)]) == 0
    return data, run, model
