"""The exact FP32 rewrites made before INT8 quantization (models/int8graph.py, issue 18): each one
gives the outputs of the graph it replaces, applies only where its pattern holds, and the
quantized input's SpaceToDepth moves after the quantization without changing a byte."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.core.errors import EndoSpineError  # noqa: E402
from models.int8graph import (  # noqa: E402
    quantize_before_space_to_depth,
    rewrite_for_int8,
    same_outputs,
)
from models.nets.bilinear import bilinear_kernel  # noqa: E402

RNG = np.random.default_rng(3)


def one_node_model(node, in_shape, out_shape, initializers=()):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(a, n) for n, a in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def ops(model):
    return [n.op_type for n in model.graph.node]


def check_exact(model, in_shape, rewrite, expected_ops):
    rewritten, counts = rewrite_for_int8(model, (rewrite,))
    assert counts == {rewrite: 1} and ops(rewritten) == expected_ops
    for _ in range(3):
        x = RNG.standard_normal(in_shape).astype(np.float32) * 4
        np.testing.assert_allclose(run(rewritten, x), run(model, x), atol=2e-5, rtol=1e-5)
    return rewritten


@pytest.mark.parametrize("size", [(16, 16), (10, 6)])
def test_stem_space_to_depth_gives_the_same_convolution(size):
    w, b = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    h, wd = size
    model = one_node_model(conv, [1, 3, h, wd], [1, 8, h // 2, wd // 2], [("w", w), ("b", b)])
    rewritten = check_exact(model, (1, 3, h, wd), "stem-space-to-depth", ["SpaceToDepth", "Conv"])
    assert {t.name for t in rewritten.graph.initializer} == {"w_s2d", "b"}          # the 3x3 weights dropped


@pytest.mark.parametrize("conv_attrs, size", [
    ({"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}, (16, 16)),   # not stride 2
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 0, 0]}, (16, 16)),   # not pad 1
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (15, 16)),   # odd side
])
def test_stem_rewrite_leaves_other_convolutions_alone(conv_attrs, size):
    w = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], **conv_attrs)
    model = one_node_model(conv, [1, 3, *size], None, [("w", w)])
    rewritten, counts = rewrite_for_int8(model)
    assert counts["stem-space-to-depth"] == 0 and ops(rewritten) == ["Conv"]


def bilinear_up(channels, factor, weight=None, bias=None):
    size = 2 * factor - factor % 2
    w = weight if weight is not None else np.broadcast_to(bilinear_kernel(factor), (channels, 1, size, size)).copy()
    inputs, inits = ["x", "w"], [("w", w)]
    if bias is not None:
        inputs.append("b")
        inits.append(("b", bias))
    node = helper.make_node("ConvTranspose", inputs, ["y"], kernel_shape=[size, size], strides=[factor, factor],
                            pads=[(size - factor) // 2] * 4, group=channels)
    return node, inits


@pytest.mark.parametrize("factor, size", [(2, (6, 5)), (4, (3, 4)), (3, (5, 5))])
def test_bilinear_transposed_convolution_becomes_resize_times_its_border(factor, size):
    node, inits = bilinear_up(4, factor)
    model = one_node_model(node, [1, 4, *size], [1, 4, size[0] * factor, size[1] * factor], inits)
    rewritten = check_exact(model, (1, 4, *size), "bilinear-resize", ["Resize", "Mul"])
    border = numpy_helper.to_array(next(t for t in rewritten.graph.initializer if t.name.endswith("_border")))
    assert border.shape == (1, 4, size[0] * factor, size[1] * factor)
    assert border.max() == pytest.approx(1.0) and border.min() < 1        # < 1 only where zeros were read


def test_other_transposed_convolutions_stay():
    node, inits = bilinear_up(4, 2)
    learned = inits[0][1] + RNG.standard_normal(inits[0][1].shape).astype(np.float32) * 0.1
    for weight, bias in ((learned, None), (None, np.ones(4, np.float32))):
        node, inits = bilinear_up(4, 2, weight, bias)
        rewritten, counts = rewrite_for_int8(one_node_model(node, [1, 4, 6, 6], None, inits))
        assert counts["bilinear-resize"] == 0 and ops(rewritten) == ["ConvTranspose"]


@pytest.mark.parametrize("attrs, size, expected", [
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (8, 8), ["Conv", "Mul"]),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (7, 9), ["Conv", "Mul"]),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}, (8, 8), ["Conv"]),
    ({"kernel_shape": [2, 2], "strides": [2, 2]}, (8, 6), ["Conv"]),
    ({"kernel_shape": [4, 4], "strides": [4, 4]}, (8, 8), ["Conv"]),
])
def test_average_pools_become_depthwise_convolutions(attrs, size, expected):
    node = helper.make_node("AveragePool", ["x"], ["y"], **attrs)
    check_exact(one_node_model(node, [1, 5, *size], None), (1, 5, *size), "pool-conv", expected)


def test_ceil_mode_pools_stay():
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    rewritten, counts = rewrite_for_int8(one_node_model(node, [1, 5, 8, 8], None))
    assert counts["pool-conv"] == 0 and ops(rewritten) == ["AveragePool"]


def test_unknown_rewrites_are_refused():
    with pytest.raises(ValueError, match="unknown INT8 rewrites"):
        rewrite_for_int8(one_node_model(helper.make_node("Relu", ["x"], ["y"]), [1, 1, 2, 2], None), ("fuse-all",))


def test_same_outputs_refuses_a_rewrite_that_is_not_exact():
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    model = one_node_model(node, [1, 2, 4, 4], None)
    rewritten, _ = rewrite_for_int8(model)
    frames = RNG.standard_normal((2, 1, 2, 4, 4)).astype(np.float32)
    assert same_outputs(model, rewritten, frames) < 1e-6
    weight = next(t for t in rewritten.graph.initializer if t.name.endswith("_dw"))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
    with pytest.raises(EndoSpineError, match="changed the FP32 outputs"):
        same_outputs(model, rewritten, frames)


def quantized_input(scale_shape=()):
    scale = np.full(scale_shape, 0.05, np.float32)
    zero = np.full(scale_shape, 128, np.uint8)
    axis = {"axis": 1} if scale_shape else {}
    nodes = [helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2),
             helper.make_node("QuantizeLinear", ["s", "scale", "zero"], ["q"], **axis),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], **axis)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(zero, "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_the_input_is_quantized_before_space_to_depth_with_the_same_bytes():
    model = quantized_input()
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    assert quantize_before_space_to_depth(moved)
    assert ops(moved) == ["QuantizeLinear", "SpaceToDepth", "DequantizeLinear"]
    x = RNG.standard_normal((1, 3, 4, 6)).astype(np.float32) * 3
    np.testing.assert_array_equal(run(moved, x), run(model, x))
    per_channel = quantized_input((12,))                          # per-channel scales do not commute: left alone
    assert not quantize_before_space_to_depth(per_channel)
    assert ops(per_channel) == ["SpaceToDepth", "QuantizeLinear", "DequantizeLinear"]


def test_the_networks_graph_is_rewritten_exactly(tmp_path):
    """The exported (untrained) liteseg-cpu: its stem, its four bilinear up-samplings and its five
    average pools are rewritten, and the outputs (probabilities and the gate's features) hold."""
    from tests.conftest import export_tiny_model

    folder = export_tiny_model(tmp_path / "m", onnx=True)
    model = onnx.load(str(folder / "model.onnx"))
    rewritten, counts = rewrite_for_int8(model)
    assert counts == {"stem-space-to-depth": 1, "bilinear-resize": 4, "pool-conv": 5}
    assert not {"ConvTranspose", "AveragePool"} & set(ops(rewritten))
    frames = RNG.standard_normal((3, 1, 3, 128, 128)).astype(np.float32)
    assert same_outputs(model, rewritten, frames) < 1e-5


def test_replaced_weights_listed_as_inputs_stay():
    """Older exporters list initializers among the graph's inputs: such a name is not dropped, so
    the rewritten model needs no feed for it."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    model = one_node_model(conv, [1, 3, 8, 8], [1, 4, 4, 4], [("w", w)])
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3]))
    rewritten, counts = rewrite_for_int8(model)
    assert counts["stem-space-to-depth"] == 1 and "w" in {t.name for t in rewritten.graph.initializer}
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, x), run(model, x), atol=2e-5)
