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


def test_run_folder_has_everything(tiny_model):
    _, run, _ = tiny_model
    for name in ("config.yaml", "data.yaml", "train.log", "metrics.csv", "best.safetensors", "last.safetensors",
                 "last.opt.safetensors", "state.yaml"):
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


def test_interrupted_run_resumes_to_the_same_weights(tiny_model, tmp_path, monkeypatch):
    """Killed right after a checkpoint in the middle of an epoch, a resumed run trains on the batches the
    uninterrupted run would have, and ends with the same weights, bit for bit."""
    import models.train.loop as loop
    from models.train.checkpoint import read_checkpoint

    data = tiny_model[0]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = ["train", "--data", str(data), "--config", str(data.parent / "cfg.yaml"), "--iters", "6", "--eval-every", "2"]
    assert main(args + ["--out", str(whole)]) == 0

    class Killed(Exception):
        pass

    write = loop._write_yaml

    def killed_after_step_4(path, state):
        write(path, state)
        if path.name == "state.yaml" and state["step"] == 4:  # 3 batches an epoch: one into the second
            raise Killed

    monkeypatch.setattr(loop, "_write_yaml", killed_after_step_4)
    with pytest.raises(Killed):
        main(args + ["--out", str(cut)])
    monkeypatch.undo()
    assert yaml.safe_load((cut / "state.yaml").read_text())["step"] == 4
    assert main(args + ["--out", str(cut), "--resume"]) == 0
    a, b = read_checkpoint(whole / "last.safetensors")[0], read_checkpoint(cut / "last.safetensors")[0]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _as_old_version_wrote(run, marker=None):
    """Turn a run's checkpoints into the pickle files older versions wrote (paddle.save), or, with a
    marker, into a crafted pickle that would create the marker when loaded."""
    from models.train.checkpoint import paddle, read_checkpoint
    from tests.models.train.test_checkpoint import write_crafted_pickle

    for stem, kind in (("best", ""), ("last", ""), ("last", ".opt")):
        new = run / f"{stem}{kind}.safetensors"
        old = run / (f"{stem}.pdopt" if kind else f"{stem}.pdparams")
        tensors, rest = read_checkpoint(new)
        new.unlink()
        if marker is not None:
            write_crafted_pickle(old, marker)
        else:
            paddle.save({**{k: paddle.to_tensor(v) for k, v in tensors.items()}, **rest}, str(old))
    state = yaml.safe_load((run / "state.yaml").read_text())
    state.pop("epoch_step", None)
    (run / "state.yaml").write_text(yaml.safe_dump(state))


def test_pickle_checkpoints_are_refused_unless_trusted(tiny_model, tmp_path, capsys):
    """export RUN and train --resume on a crafted pickle: one line naming --trust-pickle, no code runs;
    genuine old checkpoints load with the flag (export: the same model, so the same test figures)."""
    data, run, model = tiny_model
    crafted, old, marker = tmp_path / "crafted", tmp_path / "old", tmp_path / "marker"
    shutil.copytree(run, crafted)
    shutil.copytree(run, old)
    _as_old_version_wrote(crafted, marker)
    _as_old_version_wrote(old)
    capsys.readouterr()
    for argv in (["export", str(crafted), "--out", str(tmp_path / "m")],
                 ["train", "--data", str(data), "--out", str(crafted), "--config", str(crafted / "config.yaml"),
                  "--iters", "5", "--resume"],
                 ["export", str(old), "--out", str(tmp_path / "m")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert ".pdparams: an old pickle checkpoint" in err and "--trust-pickle" in err and "\n" not in err, err
    assert not marker.exists() and not (tmp_path / "m").exists()

    assert main(["export", str(old), "--out", str(tmp_path / "m"), "--trust-pickle"]) == 0
    assert "any code in the file runs" in capsys.readouterr().err
    before = yaml.safe_load((model / "manifest.yaml").read_text())["metrics"]
    after = yaml.safe_load((tmp_path / "m" / "manifest.yaml").read_text())["metrics"]
    assert after["test"]["mean"] == before["test"]["mean"]
    assert main(["train", "--data", str(data), "--out", str(old), "--config", str(old / "config.yaml"),
                 "--iters", "5", "--resume", "--trust-pickle"]) == 0
    assert yaml.safe_load((old / "state.yaml").read_text())["step"] == 5
    assert (old / "last.safetensors").is_file()  # from here on, the run is in the safe format


def test_manifest_describes_the_model(tiny_model):
    _, _, model = tiny_model
    m = yaml.safe_load((model / "manifest.yaml").read_text())
    assert m["classes"]["classes"][1]["name"] == "bone"
    assert m["preprocess"]["input_size"] == [128, 128]
    assert m["output"] == {"kind": "probabilities", "stride": 8, "layout": "NCHW", "activation": "softmax"}
    assert set(m["files"]) == {"model", "params", "weights", "gate", "deploy"}  # weights: for train --init
    gate = m["gate"]  # fitted at export on the run's train (statistics) and val (the rest) splits
    assert gate["threshold"] > 0 and 0.05 <= gate["temperature"] <= 20 and 0.3 <= gate["unsure_below"] <= 0.7
    assert gate["fitted"]["train_images"] == 6 and gate["fitted"]["val_images"] == 2
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
        assert set(np.unique(labels)) <= set(range(len(ds.classes))) | {255}  # 255: outside the field of view
        outside = labels == 255
        assert (truth[outside] == 255).mean() > 0.9  # the predicted outside is the true outside
        probs = np.load(out / f"{stem}.probs.npz")["probs"]
        assert probs.shape[0] == len(ds.classes) and probs.dtype == np.uint8


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
