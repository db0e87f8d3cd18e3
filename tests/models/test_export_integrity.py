"""The export side of model folder integrity: sealed manifests, ONNX external data listed,
signing with a key, re-sealing an older folder, the keygen and sign commands, and the runtime
refusing what a profile's trusted key did not sign."""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from models.core import signing
from models.core.errors import EndoSpineError
from models.core.runtime.manifest import MANIFEST, load_manifest
from models.core.yamlio import dump_yaml, read_yaml


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


@pytest.fixture
def key_pair(tmp_path):
    return signing.generate_key_pair(tmp_path / "keys")


def flip_first_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def trusting_profile(tmp_path, public):
    path = tmp_path / "tower.yaml"
    path.write_text(dump_yaml({"format": "endospine-profile/1", "trust": {"public_key": str(public)}}))
    return str(path)


def test_the_tiny_export_is_sealed_and_verifies(tiny_model_dir):
    m = load_manifest(tiny_model_dir)
    assert len(m.integrity["manifest_sha256"]) == 64 and set(m.files) == {"model", "params", "weights", "deploy"}


def test_the_shipped_model_verifies_and_states_its_figures_honestly():
    """Sealed, says it is a demonstration, and its test figures come from >= 30 unseen clips with intervals."""
    from models.core.paths import shipped_model

    if not (shipped_model() / MANIFEST).is_file():
        pytest.skip("no shipped model")
    m = load_manifest(shipped_model())
    assert "Demonstration model" in m.notice and "not a medical device" in m.notice.lower()
    test = m.metrics["test"]
    assert test["clips"] >= 30 and test["bootstrap"]["unit"] == "clip" and not test["bootstrap"]["small_split"]
    for key in ("mean", "mean_paper"):
        lo, hi = test["ci95"][key]["iou"]
        assert lo <= test[key]["iou"] <= hi
    # it is gated, fitted on its own training data (never the test split), the nerve shown when likely
    assert "gate" in m.files and m.gate["threshold"] > 0 and m.gate["fitted"]["train_images"] >= 100
    assert 0 < m.gate["protect_floor"] <= m.gate["unsure_below"] and m.gate["fitted"]["val_protected_shown"] >= 0.98


def test_the_runtime_runs_only_what_the_profiles_key_signed(tiny_model_dir, model_copy, tmp_path, key_pair):
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
    from models.core.runtime.manifest import sign_model_folder

    private, public = key_pair
    settings = RuntimeSettings(profile=trusting_profile(tmp_path, public))
    with pytest.raises(EndoSpineError, match="not signed"):
        SegmentationRuntime(tiny_model_dir, settings)        # what `run`'s worker and `render` build
    sign_model_folder(model_copy, signing.load_private_key(private))
    runtime = SegmentationRuntime(model_copy, settings)
    labels, _, _ = runtime.segment(np.zeros((96, 96, 3), np.uint8))
    assert labels.shape == (96, 96)
    other, _ = signing.generate_key_pair(tmp_path / "other")
    sign_model_folder(model_copy, signing.load_private_key(other))
    with pytest.raises(EndoSpineError, match="not with the trusted key"):
        SegmentationRuntime(model_copy, settings)


def test_export_signs_and_lists_onnx_external_data(tmp_path, monkeypatch, key_pair):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import models.export as export
    from models.core.classes import default_classes
    from models.core.runtime.preprocess import Preprocess
    from models.nets import build_model

    def fake_onnx(folder, graph):   # what paddle2onnx writes for a model with external tensors
        weight = numpy_helper.from_array(np.ones((3, 3), np.float32), "W")
        g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
        onnx.save_model(helper.make_model(g), str(folder / "model.onnx"), save_as_external_data=True,
                        location="model.onnx.data", size_threshold=0)
        return folder / "model.onnx"

    monkeypatch.setattr(export, "_export_onnx", fake_onnx)
    net = build_model("liteseg-cpu", len(default_classes()))
    net.eval()
    folder = tmp_path / "m"
    folder.mkdir()
    private, public = key_pair
    m = export.write_model_folder(net, "liteseg-cpu", default_classes(), Preprocess((128, 128)), folder, onnx=True,
                                  signer=signing.load_private_key(private))
    assert m.files["onnx-data-1"]["path"] == "model.onnx.data" and m.signature is not None
    load_manifest(folder, trusted_key=signing.read_public_key(public))
    flip_first_byte(folder / "model.onnx.data")
    with pytest.raises(EndoSpineError, match="model.onnx.data: SHA-256 mismatch"):
        load_manifest(folder)


def test_reseal_seals_an_older_folder_and_refuses_a_modified_one(model_copy):
    from models.export import reseal_model_folder

    data = read_yaml(model_copy / MANIFEST)
    before = load_manifest(model_copy)
    del data["integrity"]
    (model_copy / MANIFEST).write_text(dump_yaml(data))        # as exported before manifests were sealed
    with pytest.raises(EndoSpineError, match="not sealed.*re-export it"):
        load_manifest(model_copy)
    reseal_model_folder(model_copy, "re-sealed for a test")
    m = load_manifest(model_copy)
    assert m.history[-1].endswith("re-sealed for a test") and m == replace(before, history=m.history)
    flip_first_byte(model_copy / "model.pdiparams")
    with pytest.raises(EndoSpineError, match="SHA-256 mismatch"):
        reseal_model_folder(model_copy, "again")


def test_keygen_and_sign_commands(model_copy, tmp_path, capsys):
    from models.cli import main

    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    key = tmp_path / "k" / "model-signing.key.pem"
    assert main(["sign", str(model_copy), "--key", str(key)]) == 0
    assert "signed" in capsys.readouterr().out
    (model_copy / "model.json").write_bytes(b"{}")
    assert main(["sign", str(model_copy), "--key", str(key)]) == 1
    err = capsys.readouterr().err.strip()
    assert "model.json" in err and "SHA-256 mismatch" in err and "\n" not in err
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    assert main(["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "x"), "--sign-key", str(bad_key)]) == 1
    assert "bad.pem: not a PEM private key" in capsys.readouterr().err
