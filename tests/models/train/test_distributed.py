"""Scale-out training with Paddle's own launcher: 2 CPU processes (gloo collectives) against one
process at the doubled batch."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

STEPS = 40


def _losses(run) -> np.ndarray:
    with (run / "metrics.csv").open(newline="") as f:
        return np.array([float(r["value"]) for r in csv.DictReader(f) if r["key"] == "loss"])


def test_two_processes_train_like_one_at_the_doubled_batch(tiny_model, tmp_path):
    data = tiny_model[0]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"input_size": 128, "eval_every": STEPS, "log_every": 1, "warmup_iters": 5,
                                   "workers": 0, "augment": {"crop": 128}}))
    exe = str(Path(sys.executable).with_name("endospine-model"))  # the console script of this environment
    if not Path(exe).is_file():
        exe = shutil.which("endospine-model")
    two, one = tmp_path / "two", tmp_path / "one"
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(tmp_path / "logs"), exe, "train", "--data", str(data), "--out", str(two),
                           "--config", str(cfg), "--iters", str(STEPS), "--batch-size", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "data-parallel over 2 processes" in (two / "train.log").read_text()
    subprocess.run([exe, "train", "--data", str(data), "--out", str(one), "--config", str(cfg), "--iters", str(STEPS),
                    "--batch-size", "4"], check=True, capture_output=True, timeout=600)
    a, b = _losses(two), _losses(one)
    assert len(a) == len(b) == STEPS
    # different batches, so not step for step; the curves agree: both fall, and their later
    # halves' means are within 25 % of each other
    for loss in (a, b):
        assert loss[STEPS // 2:].mean() < loss[:5].mean()
    assert abs(a[STEPS // 2:].mean() - b[STEPS // 2:].mean()) <= 0.25 * b[STEPS // 2:].mean(), (a, b)
