"""Integration: tiny synthetic dataset -> train -> export -> predict, and the model folder's integrity."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label
from models.dataset import load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
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


def test_run_folder_has_everything(tiny_model):
    _, run, _ = tiny_model
    for name in ("config.yaml", "data.yaml", "train.log", "metrics.csv", "best.pdparams", "last.pdparams", "state.yaml"):
        assert (run / name).is_file(), name
    state = yaml.safe_load((run / "state.yaml").read_text())
    assert state["step"] == 4 and 0 <= state["best_miou"] <= 1
    log = (run / "train.log").read_text()
    assert "synthetic" in log and "validation mean IoU" in log  # provenance reaches the log


def test_resume_continues_and_refuses_overwrite(tiny_model, tmp_path):
    data, run, _ = tiny_model
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["train", "--data", str(data), "--out", str(copy), "--config", str(copy / "config.yaml"),
                 "--iters", "6", "--resume"]) == 0
    assert yaml.safe_load((copy / "state.yaml").read_text())["step"] == 6
    assert main(["train", "--data", str(data), "--out", str(copy), "--iters", "2"]) == 1  # already a run there


def test_manifest_describes_the_model(tiny_model):
    _, _, model = tiny_model
    m = yaml.safe_load((model / "manifest.yaml").read_text())
    assert m["classes"]["classes"][1]["name"] == "bone"
    assert m["preprocess"]["input_size"] == [128, 128]
    assert m["output"] == {"kind": "probabilities", "stride": 8, "layout": "NCHW", "activation": "softmax"}
    assert set(m["files"]) == {"model", "params"}
    assert m["metrics"]["export_parity_max_abs"] < 1e-4
    assert m["metrics"]["test"]["images"] == len(load_dataset(tiny_model[0]).split("test"))
    assert "synthetic" in m["notice"].lower()


def test_predict_writes_label_maps(tiny_model, tmp_path):
    data, _, model = tiny_model
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(out), "--probs"]) == 0
    ds = load_dataset(data)
    for item in ds.split("test"):
        stem = item.image.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        labels = read_label(out / f"{stem}.png")
        truth = read_label(ds.path(item.label))
        assert labels.shape == read_image(ds.path(item.image)).shape[:2]
        assert set(np.unique(labels)) <= {0, 1, 2, 3, 255}  # 255: outside the field of view
        outside = labels == 255
        assert (truth[outside] == 255).mean() > 0.9  # the predicted outside is the true outside
        probs = np.load(out / f"{stem}.probs.npz")["probs"]
        assert probs.shape[0] == 4 and probs.dtype == np.uint8


def test_onnx_export_matches_paddle(tiny_model, tmp_path):
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime

    data, run, _ = tiny_model
    out = tmp_path / "onnx-model"
    assert main(["export", str(run), "--out", str(out), "--onnx"]) == 0
    m = yaml.safe_load((out / "manifest.yaml").read_text())
    assert "onnx" in m["files"] and m["metrics"]["onnx_parity_max_abs"] < 1e-3
    ds = load_dataset(data)
    frame = read_image(ds.path(ds.items[0].image))
    a, _, _ = SegmentationRuntime(out).segment(frame)
    b, _, _ = SegmentationRuntime(out, RuntimeSettings(backend="onnxruntime")).segment(frame)
    assert (a != b).mean() < 0.001


def test_tampered_or_missing_files_are_refused(tiny_model, tmp_path):
    from models.core.runtime.backends import SegmentationRuntime

    _, _, model = tiny_model
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    params = bad / "model.pdiparams"
    data = bytearray(params.read_bytes())
    data[100] ^= 0xFF
    params.write_bytes(bytes(data))
    with pytest.raises(EndoSpineError) as exc:
        SegmentationRuntime(bad)
    msg = str(exc.value)
    assert "model.pdiparams" in msg and "SHA-256 mismatch" in msg and msg.count(" ") < 60
    params.unlink()
    with pytest.raises(EndoSpineError, match="missing"):
        SegmentationRuntime(bad)


def test_bad_inputs_exit_nonzero_with_one_line(tiny_model, tmp_path, capsys):
    data, run, model = tiny_model
    cases = [
        ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")],
        ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m")],
        ["predict", "--model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "p")],
        ["export", str(run), "--out", str(model)],  # target exists and is not empty
    ]
    for argv in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("endospine-model: error:") and "\n" not in err, err
    assert not (tmp_path / "m").exists() and not (tmp_path / "p").exists()
