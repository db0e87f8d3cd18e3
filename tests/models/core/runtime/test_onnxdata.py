"""The external-data files an ONNX model names, read from the wire format, agree with the onnx
package's own view; damaged bytes end in a ValueError, never a hang."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.runtime.onnxdata import external_data_files

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.external_data_helper import set_external_data  # noqa: E402


def external(tensor, location: str):
    set_external_data(tensor, location)
    tensor.ClearField("raw_data")
    return tensor


def model_with_external_data_everywhere():
    """Initializers, a Constant node's tensor attribute, an If node's subgraph initializer and a
    sparse initializer, each stored in its own external file."""
    arr = np.ones((2, 2), np.float32)
    init = external(numpy_helper.from_array(arr, "W"), "init.bin")
    const = helper.make_node("Constant", [], ["c"], value=external(numpy_helper.from_array(arr, "cv"), "attr.bin"))
    branch_init = external(numpy_helper.from_array(arr, "B"), "sub/branch.bin")
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2])
    then_g = helper.make_graph([helper.make_node("Identity", ["B"], ["z"])], "then", [], [out], [branch_init])
    else_g = helper.make_graph([helper.make_node("Identity", ["c"], ["z"])], "else", [], [out])
    cond = helper.make_node("If", ["flag"], ["r"], then_branch=then_g, else_branch=else_g)
    sparse = helper.make_sparse_tensor(external(numpy_helper.from_array(np.ones(2, np.float32), "sv"), "sparse.bin"),
                                       numpy_helper.from_array(np.array([0, 3], np.int64), "si"), [2, 2])
    graph = helper.make_graph([const, cond], "g", [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 2])], [init],
                              sparse_initializer=[sparse])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.unit
def test_finds_every_external_file_the_onnx_package_sees():
    model = model_with_external_data_everywhere()
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    theirs = {next(e.value for e in t.external_data if e.key == "location")
              for t in _get_all_tensors(model) if uses_external_data(t)}
    mine = external_data_files(model.SerializeToString())
    assert set(mine) >= theirs and set(mine) == {"init.bin", "attr.bin", "sub/branch.bin", "sparse.bin"}


@pytest.mark.unit
def test_a_model_without_external_data_names_none():
    arr = numpy_helper.from_array(np.ones((2, 2), np.float32), "W")
    graph = helper.make_graph([helper.make_node("Identity", ["W"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [arr])
    assert external_data_files(helper.make_model(graph).SerializeToString()) == []


@pytest.mark.unit
def test_damaged_bytes_end_in_value_error():
    data = model_with_external_data_everywhere().SerializeToString()
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(300):
        buf = bytearray(data[: rng.integers(1, len(data))])
        for pos in rng.integers(0, len(buf), 3):
            buf[pos] = rng.integers(0, 256)
        try:
            external_data_files(bytes(buf))
            outcomes.add("read")
        except ValueError:
            outcomes.add("refused")
    assert "refused" in outcomes
    with pytest.raises(ValueError, match="varint"):
        external_data_files(b"\xff" * 11)
