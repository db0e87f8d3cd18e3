"""deploy.yaml: the exported model for PaddleSeg's deploy tools and FastDeploy, checked the way
they read it (PaddleSeg's DeployConfig: Deploy.model / params relative to the file, the transforms
built by type over an image cv2 reads as BGR and Compose turns into RGB, the first output of the
predictor; FastDeploy: only Resize and Normalize, input_shape, output_op), listed and hashed in
the manifest, and optional for folders exported before it."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.runtime.manifest import MANIFEST, load_manifest, read_manifest_data, sha256_file, write_sealed
from models.dataset import load_dataset
from models.deployfile import DEPLOY_FILE, DEPLOY_ROLE, add_deploy_file

# the keyword arguments of PaddleSeg's transforms (paddleseg/transforms/transforms.py), and the only
# two transform types FastDeploy's PaddleSeg preprocessor accepts (it fails on any other)
TRANSFORM_ARGS = {"Resize": {"target_size", "keep_ratio", "size_divisor", "interp"}, "Normalize": {"mean", "std"}}
INTERP = {"NEAREST": cv2.INTER_NEAREST, "LINEAR": cv2.INTER_LINEAR, "CUBIC": cv2.INTER_CUBIC,
          "AREA": cv2.INTER_AREA, "LANCZOS4": cv2.INTER_LANCZOS4}


def deploy(model: Path) -> dict:
    return yaml.safe_load((model / DEPLOY_FILE).read_text(encoding="utf-8"))["Deploy"]


def paddleseg_input(transforms: list[dict], image_file: Path) -> np.ndarray:
    """What PaddleSeg's Compose makes of an image file: cv2 reads BGR as float32, to RGB, the
    transforms in order (PaddleSeg's own definitions, re-implemented here), HWC -> CHW; batch of 1."""
    img = cv2.imread(str(image_file), cv2.IMREAD_COLOR).astype("float32")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    for t in transforms:
        kind, args = t["type"], {k: v for k, v in t.items() if k != "type"}
        assert kind in TRANSFORM_ARGS and set(args) <= TRANSFORM_ARGS[kind], t
        if kind == "Resize":
            assert not args.get("keep_ratio") and not args.get("size_divisor")
            w, h = args["target_size"]
            img = cv2.resize(img, (w, h), interpolation=INTERP[args.get("interp", "LINEAR")])
        else:  # Normalize: PaddleSeg's functional.normalize
            img = img.astype(np.float32) / 255.0
            img -= np.asarray(args["mean"])
            img /= np.asarray(args["std"])
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))


def square_image(data: Path, tmp_path: Path) -> tuple[np.ndarray, Path]:
    """A square dataset frame (so the runtime's center-square crop is the whole frame), as RGB and
    as a lossless file for cv2."""
    dataset = load_dataset(data)
    rgb = read_image(dataset.path(dataset.items[0].image))
    assert rgb.shape[0] == rgb.shape[1] == 160   # larger than the 128 input: the runtime shrinks (AREA)
    path = tmp_path / "frame.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb, path


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    return Path(shutil.copytree(tiny_model[2], tmp_path / "model"))


def test_export_writes_a_deploy_yaml_paddleseg_and_fastdeploy_read(tiny_model):
    _, _, model = tiny_model
    m = load_manifest(model)
    d = deploy(model)
    w, h = m.preprocess.input_size
    assert (model / d["model"]).is_file() and (model / d["params"]).is_file()
    assert (d["model"], d["params"]) == (m.files["model"]["path"], m.files["params"]["path"])
    assert d["input_shape"] == [1, 3, h, w] == m.network["input"]
    assert d["output_op"] == "softmax" and d["output_dtype"] == "float32"   # the graph ends in a softmax
    assert [t["type"] for t in d["transforms"]] == ["Resize", "Normalize"]
    resize, normalize = d["transforms"]
    assert resize["target_size"] == [w, h] and resize["interp"] in INTERP
    assert normalize["mean"] == list(m.preprocess.mean) and normalize["std"] == list(m.preprocess.std)
    # listed and hashed like every other file of the folder
    assert m.files[DEPLOY_ROLE] == {"path": DEPLOY_FILE, "sha256": sha256_file(model / DEPLOY_FILE)}
    # what the transforms cannot say is said in the file
    text = (model / DEPLOY_FILE).read_text(encoding="utf-8")
    assert "NOT EXPRESSIBLE HERE" in text and "field of view" in text and "trust gate" in text
    stride = m.output["stride"]
    assert f"[1, {len(m.classes)}, {h // stride}, {w // stride}]" in text


def test_the_transforms_reproduce_the_runtime_preprocessing(tiny_model, tmp_path):
    data, _, model = tiny_model
    pre = load_manifest(model).preprocess
    rgb, path = square_image(data, tmp_path)
    expected, box = pre(rgb)                      # the runtime's crop -> resize -> normalize
    assert box == (0, 0, 160, 160)
    got = paddleseg_input(deploy(model)["transforms"], path)
    assert got.shape == expected.shape == (1, 3, 128, 128)
    # the runtime resizes uint8 (rounded), PaddleSeg float32: at most half a grey level apart
    grey = 1 / 255 / min(pre.std)
    assert float(np.abs(got - expected).max()) <= 0.5 * grey + 1e-5
    assert float(np.abs(got - expected).mean()) < 0.3 * grey        # rounding: a quarter of a level on average
    # and the check tells resizes apart: PaddleSeg's default LINEAR is not what the runtime does
    linear = [dict(t, interp="LINEAR") if t["type"] == "Resize" else t for t in deploy(model)["transforms"]]
    assert float(np.abs(paddleseg_input(linear, path) - expected).max()) > 2 * grey


def test_paddle_inference_runs_the_files_deploy_yaml_names(tiny_model, tmp_path):
    from models.core.paddle_env import import_paddle
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime

    data, _, model = tiny_model
    d = deploy(model)
    m = load_manifest(model)
    inference = import_paddle().inference
    config = inference.Config(str(model / d["model"]), str(model / d["params"]))   # as DeployConfig joins them
    config.disable_gpu()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    x = paddleseg_input(d["transforms"], square_image(data, tmp_path)[1])
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    predictor.run()
    first = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()   # what infer.py reads
    w, h = m.preprocess.input_size
    stride = m.output["stride"]
    assert first.shape == (1, len(m.classes), h // stride, w // stride) and first.dtype == np.float32
    assert np.allclose(first.sum(axis=1), 1.0, atol=1e-4)                               # output_op: softmax
    runtime = SegmentationRuntime(model, RuntimeSettings(onednn=False))
    assert float(np.abs(first - runtime.run_tensor(x)).max()) < 1e-4


def test_a_changed_deploy_yaml_fails_verification(model_copy):
    from models.core.runtime.backends import SegmentationRuntime

    path = model_copy / DEPLOY_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("interp: AREA", "interp: LINEAR"), encoding="utf-8")
    with pytest.raises(EndoSpineError, match="deploy.yaml: SHA-256 mismatch"):
        load_manifest(model_copy)
    path.unlink()
    with pytest.raises(EndoSpineError, match="deploy.yaml: missing"):
        SegmentationRuntime(model_copy)


def as_exported_before_deploy_yaml(folder: Path) -> None:
    """The folder as an export before this change wrote it: no deploy.yaml, not listed, sealed."""
    _, data = read_manifest_data(folder)
    del data["files"][DEPLOY_ROLE]
    write_sealed(folder, data)
    (folder / DEPLOY_FILE).unlink()


def test_a_folder_without_deploy_yaml_loads_and_can_have_one_added(tiny_model, model_copy):
    from models.core.runtime.backends import SegmentationRuntime

    original = tiny_model[2]
    as_exported_before_deploy_yaml(model_copy)
    assert DEPLOY_ROLE not in load_manifest(model_copy).files
    labels, _, _ = SegmentationRuntime(model_copy).segment(np.zeros((96, 96, 3), np.uint8))
    assert labels.shape == (96, 96)
    add_deploy_file(model_copy)
    m = load_manifest(model_copy)
    assert (model_copy / DEPLOY_FILE).read_bytes() == (original / DEPLOY_FILE).read_bytes()
    assert m.files == load_manifest(original).files
    assert m.history[-1].endswith("added deploy.yaml (PaddleSeg / FastDeploy)")
    with pytest.raises(EndoSpineError, match="already lists a deploy file"):
        add_deploy_file(model_copy)


def test_adding_deploy_yaml_to_a_signed_folder_needs_the_key(model_copy, tmp_path):
    from models.core import signing
    from models.core.runtime.manifest import sign_model_folder

    as_exported_before_deploy_yaml(model_copy)
    private, public = signing.generate_key_pair(tmp_path / "keys")
    sign_model_folder(model_copy, signing.load_private_key(private))
    with pytest.raises(EndoSpineError, match="signed; adding a file changes the seal"):
        add_deploy_file(model_copy)
    assert not (model_copy / DEPLOY_FILE).exists()
    add_deploy_file(model_copy, signing.load_private_key(private))
    assert DEPLOY_ROLE in load_manifest(model_copy, trusted_key=signing.read_public_key(public)).files


def test_an_ungated_export_has_one_output_and_says_so(tiny_model_dir):
    m = load_manifest(tiny_model_dir)
    text = (tiny_model_dir / DEPLOY_FILE).read_text(encoding="utf-8")
    assert DEPLOY_ROLE in m.files and "softmax(logits)" in text and "Output 1" not in text


def test_the_shipped_model_still_loads():
    """Exported before deploy.yaml: it must verify and run as it is (assets/ is not re-exported here)."""
    from models.core.paths import shipped_model
    from models.core.runtime.backends import SegmentationRuntime

    if not (shipped_model() / MANIFEST).is_file():
        pytest.skip("no shipped model")
    load_manifest(shipped_model())   # seal and every listed file
    labels, _, _ = SegmentationRuntime(shipped_model()).segment(np.zeros((96, 96, 3), np.uint8))
    assert labels.shape == (96, 96)
