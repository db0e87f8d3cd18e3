"""Model folder integrity: the sealed manifest, its checked values, the listed files (symlinks
resolved) and model.onnx's external data. Folders are made at test time with random bytes for
weights: hashing needs no Paddle."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.runtime.manifest import MANIFEST, Manifest, canonical_sha256, load_manifest, sha256_file, write_sealed
from models.core.runtime.preprocess import Preprocess
from models.core.yamlio import dump_yaml, read_yaml

OUTPUT = {"kind": "probabilities", "stride": 8, "layout": "NCHW", "activation": "softmax"}


def make_folder(root: Path, extra: dict[str, tuple[str, bytes]] | None = None) -> Path:
    """A model folder whose 'weights' are random bytes, listed, hashed and sealed; extra: more
    files, role -> (name, content)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    listed = {"model": ("model.json", rng.integers(0, 256, 256, np.uint8).tobytes()),
              "params": ("model.pdiparams", rng.integers(0, 256, 256, np.uint8).tobytes()), **(extra or {})}
    files = {}
    for role, (name, data) in listed.items():
        (root / name).write_bytes(data)
        files[role] = {"path": name, "sha256": sha256_file(root / name)}
    Manifest(name="endospine-test-128", classes=default_classes(), preprocess=Preprocess((128, 128)),
             output=dict(OUTPUT), files=files, notice="test").write(root)
    return root


def edit(root: Path, change, reseal: bool) -> None:
    """Change the manifest's content; reseal: recompute the seal, as someone who knows the format would."""
    data = read_yaml(root / MANIFEST)
    change(data)
    if reseal:
        write_sealed(root, data)
    else:
        (root / MANIFEST).write_text(dump_yaml(data), encoding="utf-8")


def flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def refused(root: Path, *needles: str, verify: bool = True) -> str:
    with pytest.raises(EndoSpineError) as info:
        load_manifest(root, verify=verify)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, text
    return text


def setter(section: str, key: str, value):
    def change(data):
        data[section][key] = value
    return change


@pytest.mark.unit
def test_a_written_folder_is_sealed_and_loads(tmp_path):
    root = make_folder(tmp_path / "m")
    data = read_yaml(root / MANIFEST)
    assert data["integrity"]["manifest_sha256"] == canonical_sha256(data)
    m = load_manifest(root)
    assert m.preprocess == Preprocess((128, 128)) and m.signature is None


# the manifests: std 1e-30, NaN std, 0-255 mean/std, a 5-value mean, input_size 10^30 and 65536
HOSTILE = [
    ("std", [1e-30] * 3, "preprocess.std"),
    ("std", [math.nan] * 3, "preprocess.std"),
    ("std", [58.395, 57.12, 57.375], "0..255"),
    ("mean", [123.675, 116.28, 103.53], "0..255"),
    ("mean", [0.5] * 5, "preprocess.mean"),
    ("mean", [0.5, 0.5, math.inf], "preprocess.mean"),
    ("input_size", [10 ** 30] * 2, "preprocess.input_size"),
    ("input_size", [65536, 65536], "preprocess.input_size"),
    ("input_size", [1e30, 1e30], "preprocess.input_size"),
    ("input_size", [math.inf, 128], "preprocess.input_size"),
    ("input_size", [128.5, 128], "preprocess.input_size"),
    ("input_size", ["128", 128], "preprocess.input_size"),
    ("input_size", [100, 128], "preprocess.input_size"),
    ("input_size", 128, "preprocess.input_size"),
    ("color_order", "BGR", "preprocess.color_order"),
    ("crop", "circle", "preprocess.crop"),
    ("crop", ["x"], "preprocess.crop"),
    ("scale", 1, "preprocess.scale"),
]


@pytest.mark.unit
@pytest.mark.parametrize("key, value, field", HOSTILE)
def test_edited_preprocessing_is_refused_by_the_seal(tmp_path, key, value, field):
    root = make_folder(tmp_path / "m")
    edit(root, setter("preprocess", key, value), reseal=False)
    refused(root, str(root / MANIFEST), "edited after export", "re-export it")


@pytest.mark.unit
@pytest.mark.parametrize("key, value, field", HOSTILE)
def test_resealed_hostile_preprocessing_is_refused_naming_the_field(tmp_path, key, value, field):
    root = make_folder(tmp_path / "m")
    edit(root, setter("preprocess", key, value), reseal=True)
    refused(root, str(root / MANIFEST), field)
    refused(root, str(root / MANIFEST), field, verify=False)   # values are checked on every load


@pytest.mark.unit
@pytest.mark.parametrize("section, key, value, field", [
    ("output", "kind", "logits", "output.kind"),
    ("output", "stride", 7, "output.stride"),
    ("output", "stride", True, "output.stride"),
    ("output", "layout", "NHWC", "output.layout"),
    ("output", "extra", 1, "output.extra"),
    ("files", "model", {"path": "../model.json", "sha256": "0" * 64}, "files.model.path"),
    ("files", "model", {"path": "/etc/passwd", "sha256": "0" * 64}, "files.model.path"),
    ("files", "model", {"path": "model.json", "sha256": "xyz"}, "files.model.sha256"),
    ("files", "model", "model.json", "files.model"),
])
def test_resealed_hostile_contract_is_refused_naming_the_field(tmp_path, section, key, value, field):
    root = make_folder(tmp_path / "m")
    edit(root, setter(section, key, value), reseal=True)
    refused(root, str(root / MANIFEST), field)


@pytest.mark.unit
def test_unsealed_or_damaged_seal_is_refused(tmp_path):
    root = make_folder(tmp_path / "m")
    edit(root, lambda d: d.pop("integrity"), reseal=False)
    refused(root, "not sealed", "re-export it")
    assert load_manifest(root, verify=False).name == "endospine-test-128"   # reading the class table still works
    edit(root, lambda d: d.update(integrity={"manifest_sha256": "0" * 64}), reseal=False)
    refused(root, "edited after export")
    edit(root, lambda d: d.update(integrity=["x"]), reseal=False)
    refused(root, "not sealed")


@pytest.mark.unit
def test_unknown_top_level_field_is_refused(tmp_path):
    root = make_folder(tmp_path / "m")
    edit(root, lambda d: d.update(postprocess={"gain": 10}), reseal=True)
    refused(root, "postprocess: unknown field")


@pytest.mark.unit
def test_edited_weights_are_refused(tmp_path):
    root = make_folder(tmp_path / "m")
    flip_first_byte(root / "model.pdiparams")
    refused(root, "model.pdiparams", "SHA-256 mismatch")


# -- symlinks ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_listed_file_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.pdiparams"
    outside.write_bytes(b"weights kept elsewhere")
    root = make_folder(tmp_path / "m")
    (root / "model.pdiparams").unlink()
    (root / "model.pdiparams").symlink_to(outside)
    edit(root, setter("files", "params", {"path": "model.pdiparams", "sha256": sha256_file(outside)}), reseal=True)
    refused(root, "model.pdiparams", "outside the model folder")


@pytest.mark.unit
def test_a_symlinked_sub_folder_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "model.pdiparams").write_bytes(b"weights")
    root = make_folder(tmp_path / "m")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    edit(root, setter("files", "params", {"path": "sub/model.pdiparams",
                                          "sha256": sha256_file(outside / "model.pdiparams")}), reseal=True)
    refused(root, "outside the model folder")


@pytest.mark.unit
def test_symlinks_inside_the_folder_and_a_symlinked_folder_are_fine(tmp_path):
    root = make_folder(tmp_path / "m")
    (root / "weights.bin").write_bytes((root / "model.pdiparams").read_bytes())
    (root / "model.pdiparams").unlink()
    (root / "model.pdiparams").symlink_to("weights.bin")
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    assert load_manifest(tmp_path / "link").name == "endospine-test-128"


@pytest.mark.unit
def test_a_symlink_loop_is_one_line(tmp_path):
    root = make_folder(tmp_path / "m")
    (root / "model.pdiparams").unlink()
    (root / "model.pdiparams").symlink_to(root / "model.pdiparams")
    refused(root, "model.pdiparams")


# -- ONNX external data ------------------------------------------------------------------------------
def onnx_files(tmp_path: Path, location: str = "weights.bin") -> tuple[bytes, bytes]:
    """(model.onnx, its external data) of a 1-MatMul model whose weight tensor is stored in the
    external file `location`; made with the onnx package."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(9, dtype=np.float32).reshape(3, 3), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    work = tmp_path / "onnx-work"
    work.mkdir(exist_ok=True)
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(work / "model.onnx"),
                    save_as_external_data=True, location="weights.bin", size_threshold=0)
    model = onnx.load(str(work / "model.onnx"), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    return model.SerializeToString(), (work / "weights.bin").read_bytes()


def onnx_folder(tmp_path: Path, model: bytes, listed: dict[str, tuple[str, bytes]] | None = None) -> Path:
    return make_folder(tmp_path / "m", {"onnx": ("model.onnx", model), **(listed or {})})


@pytest.mark.unit
def test_listed_onnx_external_data_loads_and_an_edit_is_refused(tmp_path):
    model, weights = onnx_files(tmp_path)
    root = onnx_folder(tmp_path, model, {"onnx-data-1": ("weights.bin", weights)})
    load_manifest(root)
    flip_first_byte(root / "weights.bin")         # the issue: editing the weights model.onnx loads
    refused(root, "weights.bin", "SHA-256 mismatch")


@pytest.mark.unit
def test_unlisted_onnx_external_data_is_refused(tmp_path):
    model, weights = onnx_files(tmp_path)
    root = onnx_folder(tmp_path, model)
    (root / "weights.bin").write_bytes(weights)
    refused(root, "model.onnx", "external data 'weights.bin'", "does not list")


@pytest.mark.unit
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path):
    model, weights = onnx_files(tmp_path, "../weights.bin")
    (tmp_path / "weights.bin").write_bytes(weights)
    root = onnx_folder(tmp_path, model)
    refused(root, "external data '../weights.bin'")


@pytest.mark.unit
def test_a_damaged_onnx_file_is_one_line(tmp_path):
    root = onnx_folder(tmp_path, b"\x3a\xff\xff\xff\xff\x0f")   # graph: a length far past the end
    refused(root, "model.onnx", "not a readable ONNX model")


# -- any resealed value: loads or one line, never another exception -----------------------------------
def _fuzz_values():
    from hypothesis import strategies as st

    scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=6)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)


@pytest.mark.unit
def test_any_resealed_value_loads_or_is_one_line(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    where = st.sampled_from([("preprocess", k) for k in ("input_size", "mean", "std", "crop", "color_order")]
                            + [("output", k) for k in ("kind", "stride", "layout")]
                            + [("files", "model"), ("files", "params"), ("files", "onnx"), (None, "name"),
                               (None, "preprocess"), (None, "output"), (None, "files"), (None, "history")])

    root = make_folder(tmp_path_factory.mktemp("fuzz") / "m")
    sealed = (root / MANIFEST).read_bytes()

    @hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
    @hypothesis.given(place=where, value=_fuzz_values())
    def check(place, value):
        (root / MANIFEST).write_bytes(sealed)
        section, key = place

        def change(data):
            (data[section] if section else data)[key] = value
        edit(root, change, reseal=True)
        try:
            m = load_manifest(root)
        except EndoSpineError as exc:
            assert "\n" not in str(exc)
            return
        w, h = m.preprocess.input_size
        assert 128 <= w <= 4096 and 128 <= h <= 4096 and len(m.preprocess.mean) == 3

    check()
