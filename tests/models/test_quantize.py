"""INT8 (issue 18): model.int8.onnx made from an exported folder's model.onnx, calibrated on the
training split, listed and hashed in the manifest with its accuracy against FP32, run with
precision int8 on ONNX Runtime, refused when tampered with, missing or asked of Paddle."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.core import signing
from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.runtime.manifest import INT8_ROLE, SEAL, load_manifest, read_manifest_data, write_sealed
from models.dataset import load_dataset
from models.quantize import INT8_FILE, add_int8_file, calibration_frames


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """An exported, untrained (seeded) liteseg-cpu model at 128x128 with model.onnx."""
    from tests.conftest import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("onnx-model"), onnx=True)


@pytest.fixture(scope="module")
def int8_model(onnx_model, tiny_synth, tmp_path_factory):
    """onnx_model with model.int8.onnx added (calibrated on tiny_synth's training split)."""
    folder = Path(shutil.copytree(onnx_model, tmp_path_factory.mktemp("int8") / "model"))
    doc = add_int8_file(folder, tiny_synth, progress=False)
    return folder, doc


@pytest.fixture
def int8_copy(int8_model, tmp_path):
    return Path(shutil.copytree(int8_model[0], tmp_path / "model"))


def test_calibration_frames_are_the_runtimes_inputs_of_training_images(onnx_model, tiny_synth):
    dataset = load_dataset(tiny_synth)
    runtime = SegmentationRuntime(onnx_model, RuntimeSettings(backend="onnxruntime")).independent_frames()
    frames = calibration_frames(dataset, runtime.pre, images=64)
    train = dataset.split("train")
    assert frames.shape == (len(train), 1, 3, 128, 128)          # all of a split smaller than asked
    for frame, item in zip(frames, train):
        expected, _ = runtime.prep(read_image(dataset.path(item.image)))
        np.testing.assert_array_equal(frame, expected)
    assert len(calibration_frames(dataset, runtime.pre, images=1)) == 1


def test_quantize_lists_a_verified_int8_model_with_its_accuracy(int8_model, tiny_synth):
    folder, doc = int8_model
    m = load_manifest(folder)                                    # seal, every file's SHA-256
    assert m.files[INT8_ROLE]["path"] == INT8_FILE and (folder / INT8_FILE).is_file()
    section = m.metrics["int8"]
    assert {k: v for k, v in doc.items() if k != "integrity"} == section
    assert section["calibration"] == {"dataset": str(tiny_synth), "split": "train",
                                      "images": len(load_dataset(tiny_synth).split("train")), "profile": None}
    test = section["test"]
    assert test["images"] == len(load_dataset(tiny_synth).split("test")) and test["clips"] == 2
    assert test["miou_difference"] == pytest.approx(test["int8_miou"] - test["fp32_miou"], abs=1e-4)
    assert "static quantization" in section["method"] and section["options"]["format"] in ("QOperator", "QDQ")
    assert "added model.int8.onnx" in m.history[-1]
    import onnx

    ops = {n.op_type for n in onnx.load(str(folder / INT8_FILE)).graph.node}
    assert ops & {"QLinearConv", "QuantizeLinear"}               # really quantized


def test_int8_runs_and_agrees_with_fp32(int8_model, tiny_synth):
    folder, _ = int8_model
    fp32 = SegmentationRuntime(folder, RuntimeSettings(backend="onnxruntime"))
    int8 = SegmentationRuntime(folder, RuntimeSettings(backend="onnxruntime", precision="int8"))
    assert int8.model_id == fp32.model_id + "+int8"
    dataset = load_dataset(tiny_synth)
    agree = []
    assert (fp32.encoding, int8.encoding) == ("tensor", "blocks")   # INT8 reads the picture itself
    for item in dataset.items:
        image = read_image(dataset.path(item.image))
        (x, view), (blocks, int8_view) = fp32.prep(image), int8.prep(image)
        assert view == int8_view and blocks.dtype == np.uint8
        a, b = fp32.run_tensor(x), int8.run_tensor(blocks)
        assert a.shape == b.shape and np.abs(a - b).max() < 0.1
        np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-5)  # the softmax stays FP32 (exp / sum)
        agree.append(float((a.argmax(1) == b.argmax(1)).mean()))
        assert (fp32.features is None) == (int8.features is None)     # the gate's features, if any, too
    assert np.mean(agree) > 0.9
    labels, _, _ = int8.segment(read_image(dataset.path(dataset.items[0].image)))
    assert labels.dtype == np.uint8


def test_the_int8_graph_stays_uint8_from_input_to_softmax(int8_model):
    """After the exact rewrites (models/int8graph.py), no FP32 island is left in the network: the
    picture comes in as uint8 2x2 blocks straight into the first convolution (models/int8ends.py);
    no ConvTranspose, no AveragePool; the up-samplings are uint8 Resize; the softmax is exp / sum.
    The manifest says which rewrites applied."""
    import onnx

    folder, doc = int8_model
    graph = onnx.load(str(folder / INT8_FILE)).graph
    ops = [node.op_type for node in graph.node]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert ops[:2] == ["Transpose", "QLinearConv"] and not {"QuantizeLinear", "SpaceToDepth"} & set(ops[:3])
    assert not {"ConvTranspose", "AveragePool", "Softmax"} & set(ops) and "Resize" in ops
    assert {"Exp", "ReduceSum", "Div"} <= set(ops)
    assert ops.count("DequantizeLinear") <= 5           # the softmax's input and the gate's features only
    assert "stem-space-to-depth x1, bilinear-resize x4, pool-conv x5" in doc["method"]
    assert "reads the picture in 2x2 uint8 blocks, softmax as exp / sum" in doc["method"]
    assert doc["options"]["rewrites"] == ["stem-space-to-depth", "bilinear-resize", "pool-conv"]
    assert doc["options"]["ends"] == ["pixel-blocks", "bounded-softmax"]


def test_average_pools_left_in_fp32_stay_float(onnx_model, tiny_synth, tmp_path):
    """Without the rewrites the average pools stay FP32 islands (not in op_types), and the runtime's
    session keeps them so; ONNX Runtime's default would fuse them into QLinearAveragePool."""
    import onnx
    import onnxruntime as ort

    from models.core.runtime.backends import onnx_session_options
    from models.quantize import OPTIONS, quantize_onnx

    pre = SegmentationRuntime(onnx_model, RuntimeSettings(backend="onnxruntime")).pre
    frames = calibration_frames(load_dataset(tiny_synth), pre, images=4)
    plain = replace(OPTIONS, rewrites=(), ends=(), op_types=tuple(t for t in OPTIONS.op_types if t != "Resize"))
    assert quantize_onnx(onnx_model / "model.onnx", tmp_path / "plain.onnx", frames, plain) == {}

    def ops(options, name):
        options.optimized_model_filepath = str(tmp_path / name)
        ort.InferenceSession(str(tmp_path / "plain.onnx"), options, providers=["CPUExecutionProvider"])
        return {node.op_type for node in onnx.load(str(tmp_path / name)).graph.node}

    default = ort.SessionOptions()
    assert "QLinearAveragePool" in ops(default, "default.onnx")      # what the setting prevents
    ours = ops(onnx_session_options(RuntimeSettings(backend="onnxruntime", precision="int8")), "ours.onnx")
    assert "QLinearAveragePool" not in ours and "AveragePool" in ours and "QLinearConv" in ours


def test_replace_swaps_in_a_new_int8_model_once_it_is_measured(int8_copy, tiny_synth):
    before, old = load_manifest(int8_copy), (int8_copy / INT8_FILE).read_bytes()
    doc = add_int8_file(int8_copy, tiny_synth, progress=False, replace=True, images=1)
    m = load_manifest(int8_copy)                                 # sealed, every hash holds
    assert m.metrics["int8"]["calibration"]["images"] == 1 == doc["calibration"]["images"]
    assert before.metrics["int8"]["calibration"]["images"] > 1
    assert "replacing the previous one" in m.history[-1] and len(m.history) == len(before.history) + 1
    assert (int8_copy / INT8_FILE).read_bytes() != old         # calibrated on other frames
    assert sorted(p.name for p in int8_copy.iterdir() if p.name.startswith(".")) == []


def test_replace_keeps_the_old_model_when_the_new_one_fails(int8_copy, onnx_model, tmp_path):
    manifest, int8 = (int8_copy / "manifest.yaml").read_bytes(), (int8_copy / INT8_FILE).read_bytes()
    with pytest.raises(EndoSpineError, match="dataset|no such|not found|missing"):
        add_int8_file(int8_copy, tmp_path / "no-dataset", progress=False, replace=True)
    assert (int8_copy / "manifest.yaml").read_bytes() == manifest and (int8_copy / INT8_FILE).read_bytes() == int8
    assert sorted(p.name for p in int8_copy.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(EndoSpineError, match="lists no INT8 model to replace"):
        add_int8_file(onnx_model, tmp_path, progress=False, replace=True)


def test_a_tampered_int8_model_is_refused(int8_copy):
    data = bytearray((int8_copy / INT8_FILE).read_bytes())
    data[-1] ^= 0xFF
    (int8_copy / INT8_FILE).write_bytes(bytes(data))
    with pytest.raises(EndoSpineError, match=r"model.int8.onnx: SHA-256 mismatch"):
        load_manifest(int8_copy)
    with pytest.raises(EndoSpineError, match="SHA-256 mismatch"):
        SegmentationRuntime(int8_copy, RuntimeSettings(backend="onnxruntime", precision="int8"))


def _resealed(folder: Path, change) -> None:
    """The manifest changed by `change(content)` and sealed again (a valid seal, a bad schema)."""
    _, data = read_manifest_data(folder)
    content = {k: v for k, v in data.items() if k != SEAL}
    change(content)
    write_sealed(folder, content)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["metrics"].pop("int8"), "metrics.int8: missing"),
    (lambda c: c["files"].pop(INT8_ROLE), "metrics.int8: present, but files lists no INT8 model"),
    (lambda c: c["files"].pop("onnx"), "without the model.onnx it was made from"),
    (lambda c: c["metrics"]["int8"]["test"].update(int8_miou=1.5), "int8_miou: 1.5: expected a mean IoU"),
    (lambda c: c["metrics"]["int8"]["test"].update(miou_difference=0.3), "is not int8_miou - fp32_miou"),
    (lambda c: c["metrics"]["int8"]["calibration"].update(split="test"), "of the train split"),
    (lambda c: c["metrics"]["int8"]["calibration"].update(images="64"), "calibration.images: expected int"),
    (lambda c: c["metrics"]["int8"].update(extra=1), "metrics.int8.extra: unknown field"),
])
def test_the_manifest_schema_ties_the_int8_file_to_its_figures(int8_copy, change, message):
    _resealed(int8_copy, change)
    with pytest.raises(EndoSpineError, match=message):
        load_manifest(int8_copy, verify=False)


def test_int8_is_refused_without_the_file_or_on_paddle(onnx_model, int8_model):
    with pytest.raises(EndoSpineError, match=rf"{onnx_model}: no INT8 model .*endospine-model quantize"):
        SegmentationRuntime(onnx_model, RuntimeSettings(backend="onnxruntime", precision="int8"))
    folder, _ = int8_model
    with pytest.raises(EndoSpineError, match=rf"{folder}: INT8 runs on the onnxruntime backend only"):
        SegmentationRuntime(folder, RuntimeSettings(backend="paddle", precision="int8"))
    with pytest.raises(ValueError, match="precision must be one of"):
        RuntimeSettings(precision="int4")


def test_quantize_refuses_what_it_cannot_do(onnx_model, int8_model, tiny_synth, tiny_model_dir, tmp_path):
    with pytest.raises(EndoSpineError, match="no model.onnx to quantize"):
        add_int8_file(tiny_model_dir, tiny_synth, progress=False)
    with pytest.raises(EndoSpineError, match="already lists an INT8 model"):
        add_int8_file(int8_model[0], tiny_synth, progress=False)
    stray = Path(shutil.copytree(onnx_model, tmp_path / "stray"))
    (stray / INT8_FILE).write_bytes(b"not mine")
    with pytest.raises(EndoSpineError, match="exists but is not in the manifest"):
        add_int8_file(stray, tiny_synth, progress=False)
    assert (stray / INT8_FILE).read_bytes() == b"not mine"
    no_test = Path(shutil.copytree(onnx_model, tmp_path / "no-test"))
    before = (no_test / "manifest.yaml").read_bytes()
    data = Path(shutil.copytree(tiny_synth, tmp_path / "data"))
    (data / "test.txt").write_text("")
    with pytest.raises(EndoSpineError, match="no test split"):
        add_int8_file(no_test, data, progress=False)
    assert not (no_test / INT8_FILE).exists() and (no_test / "manifest.yaml").read_bytes() == before


def test_a_signed_folder_needs_its_key_and_is_signed_again(onnx_model, tiny_synth, tmp_path):
    from models.core.runtime.manifest import sign_model_folder

    private, public = signing.generate_key_pair(tmp_path / "keys")
    folder = Path(shutil.copytree(onnx_model, tmp_path / "model"))
    sign_model_folder(folder, signing.load_private_key(private))
    with pytest.raises(EndoSpineError, match="signed; adding a file changes the seal"):
        add_int8_file(folder, tiny_synth, progress=False)
    assert not (folder / INT8_FILE).exists()
    doc = add_int8_file(folder, tiny_synth, signer=signing.load_private_key(private), progress=False)
    assert "signature" in doc["integrity"]
    m = load_manifest(folder, trusted_key=signing.read_public_key(public))
    assert INT8_ROLE in m.files


def test_cli_quantize_and_precision(onnx_model, tiny_synth, tmp_path, capsys):
    from models.cli import main

    folder = Path(shutil.copytree(onnx_model, tmp_path / "model"))
    assert main(["quantize", str(folder), "--data", str(tiny_synth), "--calibration-images", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {folder}/{INT8_FILE}: INT8 (1 calibration image): test mean IoU (tissues)" in out
    assert load_manifest(folder).metrics["int8"]["calibration"]["images"] == 1
    for precision in ("fp32", "int8"):
        pred = tmp_path / f"pred-{precision}"
        assert main(["predict", "--model", str(folder), "--data", str(tiny_synth), "--out", str(pred),
                     "--precision", precision, "-q"]) == 0
        assert sorted(p.name for p in pred.glob("*.png"))
    assert main(["predict", "--model", str(onnx_model), "--data", str(tiny_synth), "--out", str(tmp_path / "p"),
                 "--precision", "int8", "-q"]) == 1
    assert "no INT8 model in this model folder" in capsys.readouterr().err
    assert main(["predict", "--model", str(folder), "--data", str(tiny_synth), "--out", str(tmp_path / "p2"),
                 "--precision", "int8", "--backend", "paddle", "-q"]) == 1
    assert "INT8 runs on the onnxruntime backend only" in capsys.readouterr().err
    assert main(["quantize", str(folder), "--data", str(tiny_synth), "-q"]) == 1
    assert "already lists an INT8 model" in capsys.readouterr().err
    assert main(["quantize", str(folder), "--data", str(tiny_synth), "--replace", "-q"]) == 0
    assert "replacing the previous one" in load_manifest(folder).history[-1]


def test_export_int8_needs_onnx(tmp_path):
    from models.export import export_run

    with pytest.raises(EndoSpineError, match="--int8 needs --onnx"):
        export_run(tmp_path / "run", tmp_path / "out", int8=True)


@pytest.mark.slow
def test_export_writes_int8_with_its_accuracy(tiny_model, tmp_path):
    from models.cli import main

    data, run, _ = tiny_model
    out = tmp_path / "model"
    assert main(["export", str(run), "--out", str(out), "--onnx", "--int8", "-q"]) == 0
    m = load_manifest(out)
    assert m.files[INT8_ROLE]["path"] == INT8_FILE
    section = m.metrics["int8"]
    assert section["calibration"]["dataset"] == str(data) and section["test"]["dataset"] == str(data)
    assert section["test"]["images"] == m.metrics["test"]["images"]
    SegmentationRuntime(out, RuntimeSettings(backend="onnxruntime", precision="int8"))


@pytest.mark.slow
def test_bench_times_fp32_and_int8_side_by_side(int8_model):
    from models.bench import bench_model

    result = bench_model(str(int8_model[0]), runs=2, warmup=1, rounds=1, backend="onnxruntime")
    assert result["onnxruntime_ms_median"] > 0 and result["onnxruntime_int8_ms_median"] > 0
    assert result["int8_speedup"] == pytest.approx(
        result["onnxruntime_ms_median"] / result["onnxruntime_int8_ms_median"], abs=0.01)
    # each model fed its own input, made from the same picture, and that making timed too
    assert result["onnxruntime_input_ms_median"] > 0 and result["onnxruntime_int8_input_ms_median"] > 0
    assert result["int8_speedup_with_input"] > 0
