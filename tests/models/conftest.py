"""Fixtures shared by the model-side tests (evaluation, reader study)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A rendered synthetic dataset: 3 clips x 2 frames, 128x128, test split = 2 clips (4 images)."""
    from models.cli import main

    out = tmp_path_factory.mktemp("tiny-synth") / "data"
    assert main(["synth", "--out", str(out), "--clips", "3", "--frames", "2", "--size", "128", "--seed", "4",
                 "--workers", "1", "--ratios", "0.34,0,0.66"]) == 0
    return out
