"""The shipped real-data model (assets/models/kvasir-polyp): sealed, honest about what it is, the
same on both backends, and runnable by the display's and render's code like the spine model."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.paths import assets_dir
from models.core.runtime.manifest import MANIFEST, load_manifest

KVASIR = assets_dir() / "models" / "kvasir-polyp"
pytestmark = pytest.mark.skipif(not (KVASIR / MANIFEST).is_file(), reason="no shipped Kvasir-SEG model")


def test_it_verifies_and_states_what_it_is():
    m = load_manifest(KVASIR)  # every file against its hash, the seal
    assert m.classes.names == ["background", "polyp"]
    assert "Kvasir-SEG" in m.notice and "not a medical device" in m.notice.lower() and "not a spine model" in m.notice
    assert {"model", "params", "onnx", "gate", "deploy"} <= set(m.files)
    test = m.metrics["test"]
    assert test["images"] == 100 and test["dataset"].endswith("kvasir")
    lo, hi = test["ci95"]["mean"]["dice"]
    assert lo <= test["mean"]["dice"] <= hi
    assert m.gate["threshold"] > 0 and m.metrics["onnx_parity_max_abs"] < 1e-3


def test_both_backends_give_the_same_probabilities():
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime

    rgb = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    paddle, _, _ = SegmentationRuntime(KVASIR, RuntimeSettings(backend="paddle")).probabilities(rgb)
    onnx, _, _ = SegmentationRuntime(KVASIR, RuntimeSettings(backend="onnxruntime")).probabilities(rgb)
    assert paddle.shape == onnx.shape and paddle.shape[0] == 2
    assert np.abs(paddle - onnx).max() < 1e-3


def test_render_runs_it(small_video, tmp_path):
    from app.cli import main

    out = tmp_path / "kvasir.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(KVASIR), "--max-frames", "5",
                 "--frames-csv", str(tmp_path / "f.csv")]) == 0
    assert out.stat().st_size > 0
