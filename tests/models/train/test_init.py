"""Fine-tuning: train --init from an exported model folder or a run, head rows matched by class name."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.classes import ClassTable, default_classes
from models.core.runtime.manifest import write_sealed
from models.nets import build_model
from models.train.checkpoint import read_checkpoint
from models.train.init import classifier_keys, head_matches, init_from
from models.train.loop import paddle

pytestmark = pytest.mark.slow


def _table(*names: str) -> ClassTable:
    return ClassTable.from_dict({"name": "t", "classes": [{"id": i, "name": n, "color": [i * 30, 0, 0]}
                                                          for i, n in enumerate(names)]})


def test_head_rows_match_by_name_whatever_the_order():
    source = default_classes()  # background, bone, ligament, disc, nerve, fat, instrument
    target = _table("background", "Polyp", "Disc", "bone")
    assert head_matches(source, target) == {0: 0, 2: 3, 3: 1}


def test_init_copies_every_layer_and_the_matching_rows(tiny_model):
    _, run, _ = tiny_model
    target = _table("background", "polyp", "disc", "bone")
    paddle.seed(5)
    net = build_model("liteseg-cpu", len(target))
    w_key, b_key = classifier_keys(net)
    fresh = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    lines = init_from(net, "liteseg-cpu", target, run)
    donor, _ = read_checkpoint(run / "best.safetensors")
    ours = {k: v.numpy() for k, v in net.state_dict().items()}
    for key in ours:
        if key not in (w_key, b_key):
            np.testing.assert_array_equal(ours[key], donor[key], err_msg=key)
    for key in (w_key, b_key):
        np.testing.assert_array_equal(ours[key][[0, 2, 3]], donor[key][[0, 3, 1]])
        np.testing.assert_array_equal(ours[key][1], fresh[key][1])  # polyp: new class, fresh start
    text = "\n".join(lines)
    assert "kept for background, disc, bone" in text and "starting fresh: polyp" in text
    assert "(dropped): ligament, nerve, fat, instrument" in text


def test_train_init_from_model_folder_with_a_frozen_encoder(tiny_model, tmp_path):
    data, _, model = tiny_model
    out = tmp_path / "ft"
    assert main(["train", "--data", str(data), "--out", str(out), "--config", str(tiny_model[1] / "config.yaml"),
                 "--iters", "3", "--eval-every", "3", "--init", str(model), "--freeze-backbone", "3"]) == 0
    log = (out / "train.log").read_text()
    assert f"init from model {model}" in log and "encoder frozen for the first 3 steps" in log
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["init"] == str(model) and cfg["freeze_backbone"] == 3
    start, _ = read_checkpoint(model / "weights.safetensors")
    end, _ = read_checkpoint(out / "last.safetensors")
    net = build_model("liteseg-cpu", 7)
    params = {n for n, _ in net.named_parameters()}
    backbone = [k for k in params if k.startswith("backbone.")]
    assert backbone and all(np.array_equal(start[k], end[k]) for k in backbone)  # frozen: unchanged
    w_key, _ = classifier_keys(net)
    assert not np.array_equal(start[w_key], end[w_key])  # the rest trained


def test_init_refusals_are_one_line(tiny_model, tmp_path, capsys):
    data, run, model = tiny_model
    cfg = str(run / "config.yaml")
    tampered, old = tmp_path / "tampered", tmp_path / "old"
    shutil.copytree(model, tampered)
    with (tampered / "weights.safetensors").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    shutil.copytree(model, old)  # as exported before the weights file existed
    content = yaml.safe_load((old / "manifest.yaml").read_text())
    del content["files"]["weights"]
    (old / "weights.safetensors").unlink()
    write_sealed(old, content)
    cases = [(["--init", str(tampered)], "weights.safetensors"),
             (["--init", str(old)], "re-export it"),
             (["--init", str(run), "--net", "liteseg-gpu"], "use --net liteseg-cpu"),
             (["--init", str(data)], "neither an exported model folder"),
             (["--init", str(tmp_path / "nope")], "needs an exported model folder or a training run"),
             (["--freeze-backbone", "2"], "--freeze-backbone needs --init")]
    capsys.readouterr()
    for i, (extra, words) in enumerate(cases):
        out = tmp_path / f"run{i}"
        assert main(["train", "--data", str(data), "--out", str(out), "--config", cfg, "--iters", "1", *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err and "Traceback" not in err, (extra, err)
        assert not (out / "last.safetensors").exists()
