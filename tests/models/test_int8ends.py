"""The quantized graph's ends (models/int8ends.py): the picture read in 2x2 uint8 blocks by the
first convolution, and the softmax of a dequantized uint8 tensor as exp / sum."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.core.runtime.preprocess import Preprocess, input_encoding
from models.int8ends import EXP_BOUND, bounded_softmax, pixel_blocks_input

SIDE = 128
MEAN = (100 / 255, 128 / 255, 150 / 255)    # whole pixel levels: the float input's quantization is then exact
STD = (0.25, 0.25, 0.25)


def _run(model, feed: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: feed})[0]


def _stem(seed: int = 0, zero: int = 126, pads=(1, 1, 0, 0), levels: float = 1.0):
    """QuantizeLinear -> SpaceToDepth(2) -> QLinearConv (2x2 on 12 channels, 8 out) -> DequantizeLinear,
    as quantize_static and quantize_before_space_to_depth leave a rewritten stem; the input scale
    is `levels` pixel levels of the normalised input."""
    rng = np.random.default_rng(seed)
    t = [numpy_helper.from_array(a, n) for a, n in (
        (np.array(levels / (255 * STD[0]), np.float32), "x_scale"), (np.array(zero, np.uint8), "x_zero"),
        (rng.integers(-60, 61, (8, 12, 2, 2)).astype(np.int8), "w"), (np.array(0.01, np.float32), "w_scale"),
        (np.array(0, np.int8), "w_zero"), (np.array(0.05, np.float32), "y_scale"),
        (np.array(128, np.uint8), "y_zero"), (rng.integers(-3000, 3000, 8).astype(np.int32), "bias"))]
    nodes = [helper.make_node("QuantizeLinear", ["image", "x_scale", "x_zero"], ["q"]),
             helper.make_node("SpaceToDepth", ["q"], ["blocks"], blocksize=2),
             helper.make_node("QLinearConv", ["blocks", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale",
                                              "y_zero", "bias"], ["y"], kernel_shape=[2, 2], pads=list(pads)),
             helper.make_node("DequantizeLinear", ["y", "y_scale", "y_zero"], ["out"])]
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                           [1, 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], t)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _pictures(low: int, high: int, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(low, high + 1, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(n)]


def test_the_first_convolution_reads_the_picture_with_the_same_sums():
    """Where the float input's quantization is exact (whole-level means, one level per step, no
    clipping), the picture-input graph gives the same numbers, but at the padded top row and left
    column, which read the zero point instead of each channel's mean."""
    pre = Preprocess(input_size=(SIDE, SIDE), mean=MEAN, std=STD)
    before, after = _stem(), _stem()
    assert pixel_blocks_input(after, pre.mean, pre.std)
    assert [n.op_type for n in after.graph.node] == ["Transpose", "QLinearConv", "DequantizeLinear"]
    declared = after.graph.input[0]
    assert declared.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_value for d in declared.type.tensor_type.shape.dim] == [1, SIDE // 2, SIDE // 2, 12]
    for rgb in _pictures(60, 190):               # x - mean + zero point stays in 0..255
        a, b = _run(before, pre.normalize(rgb)), _run(after, pre.blocks(rgb))
        np.testing.assert_array_equal(a[:, :, 1:, 1:], b[:, :, 1:, 1:])
        assert not np.array_equal(a, b)          # the padding: the zero point 126 against means 100, 128, 150


def test_the_picture_input_is_exact_everywhere_when_the_stem_has_no_padding():
    pre = Preprocess(input_size=(SIDE, SIDE), mean=MEAN, std=STD)
    before, after = _stem(pads=(0, 0, 0, 0)), _stem(pads=(0, 0, 0, 0))
    assert pixel_blocks_input(after, pre.mean, pre.std)
    for rgb in _pictures(60, 190):
        np.testing.assert_array_equal(_run(before, pre.normalize(rgb)), _run(after, pre.blocks(rgb)))


@pytest.mark.parametrize("levels", [1.0, 1.5])
def test_the_picture_input_is_the_exact_computation_for_every_pixel(levels):
    """Every pixel value, also those outside the float input's quantized range (its scale `levels`
    pixel levels, its zero point 126 levels from means of 100-150): the picture input stays within
    the output's rounding of the exact convolution of the normalised picture. The bias, quantized
    in units of the float input's scale, is carried over to the picture's."""
    pre = Preprocess(input_size=(SIDE, SIDE), mean=MEAN, std=STD)
    after = _stem(pads=(0, 0, 0, 0), levels=levels)
    assert pixel_blocks_input(after, pre.mean, pre.std)
    model = _stem(pads=(0, 0, 0, 0), levels=levels)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for rgb in _pictures(0, 255, 2):
        n = pre.normalize(rgb).astype(np.float64)
        blocks = n.reshape(1, 3, SIDE // 2, 2, SIDE // 2, 2).transpose(0, 3, 5, 1, 2, 4).reshape(1, 12, SIDE // 2,
                                                                                                 SIDE // 2)
        w = inits["w"].astype(np.float64) * float(inits["w_scale"])
        acc = np.einsum("okij,bkhw->bohw", w[:, :, :1, :1], blocks[:, :, :-1, :-1]) \
            + np.einsum("okij,bkhw->bohw", w[:, :, :1, 1:], blocks[:, :, :-1, 1:]) \
            + np.einsum("okij,bkhw->bohw", w[:, :, 1:, :1], blocks[:, :, 1:, :-1]) \
            + np.einsum("okij,bkhw->bohw", w[:, :, 1:, 1:], blocks[:, :, 1:, 1:])
        acc += (inits["bias"] * float(inits["x_scale"]) * float(inits["w_scale"]))[None, :, None, None]
        step = float(inits["y_scale"])
        expected = np.clip(np.round(acc / step) + 128, 0, 255) * step - 128 * step
        got = _run(after, pre.blocks(rgb))
        assert np.abs(got - expected).max() <= step * 1.001     # one output step: rounding of the sums


def test_pixel_blocks_is_refused_where_it_does_not_fit():
    stem = _stem()
    assert not pixel_blocks_input(stem, MEAN, (0.2, 0.25, 0.25))    # one input scale cannot hold three stds
    assert [n.op_type for n in stem.graph.node][:2] == ["QuantizeLinear", "SpaceToDepth"]
    signed = _stem()                                                  # int8 activations
    signed.graph.initializer.remove(next(t for t in signed.graph.initializer if t.name == "x_zero"))
    signed.graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "x_zero"))
    assert not pixel_blocks_input(signed, MEAN, STD)
    no_s2d = _stem()
    no_s2d.graph.node[2].input[0] = "q"
    del no_s2d.graph.node[1]
    assert not pixel_blocks_input(no_s2d, MEAN, STD)
    assert no_s2d.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT


def _softmax_of_dequantized(scale: float, zero: int):
    t = [numpy_helper.from_array(np.array(scale, np.float32), "s"),
         numpy_helper.from_array(np.array(zero, np.uint8), "z")]
    nodes = [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("q", TensorProto.UINT8, [2, 7, 16, 16])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, None)], t)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("scale,zero", [(0.1, 128), (0.3, 0), (0.31, 255)])
def test_bounded_softmax_is_the_softmax(scale, zero):
    before, after = _softmax_of_dequantized(scale, zero), _softmax_of_dequantized(scale, zero)
    assert bounded_softmax(after)
    assert [n.op_type for n in after.graph.node] == ["DequantizeLinear", "Exp", "ReduceSum", "Div"]
    q = np.random.default_rng(2).integers(0, 256, (2, 7, 16, 16), dtype=np.uint8)
    q[0, :, 0, 0] = [0, 255, 0, 255, 0, 255, 0]             # the extremes of the bound
    np.testing.assert_allclose(_run(after, q), _run(before, q), rtol=2e-6, atol=1e-7)


def test_bounded_softmax_leaves_an_unbounded_softmax_alone():
    model = _softmax_of_dequantized(EXP_BOUND / 128, 128)     # |x| reaches 80
    assert not bounded_softmax(model)
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "Softmax"]


def test_blocks_are_the_pictures_2x2_blocks_in_space_to_depth_order():
    pre = Preprocess(input_size=(256, 128))
    rgb = np.random.default_rng(3).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    blocks = pre.blocks(rgb)
    assert blocks.shape == (1, 64, 128, 12) and blocks.dtype == np.uint8 and blocks.flags.c_contiguous
    # ONNX SpaceToDepth on the channels-first picture, then channels last
    chw = rgb.transpose(2, 0, 1).reshape(3, 64, 2, 128, 2)
    expected = chw.transpose(2, 4, 0, 1, 3).reshape(12, 64, 128).transpose(1, 2, 0)
    np.testing.assert_array_equal(blocks[0], expected)


def test_input_encoding_is_read_from_the_models_declared_input():
    pre = Preprocess(input_size=(256, 128))
    assert input_encoding("tensor(float)", [1, 3, 128, 256], pre) == "tensor"
    assert input_encoding("tensor(float)", ["batch", 3, 128, 256], pre) == "tensor"
    assert input_encoding("tensor(uint8)", [1, 64, 128, 12], pre) == "blocks"
    for element, shape in (("tensor(uint8)", [1, 128, 256, 3]), ("tensor(float)", [1, 64, 128, 12]),
                           ("tensor(float16)", [1, 3, 128, 256]), ("tensor(float)", [1, 3, 256, 128])):
        with pytest.raises(ValueError, match="neither a 1x3x128x256 float tensor nor the picture in 2x2 blocks"):
            input_encoding(element, shape, pre)
