"""The two ends of a quantized (QOperator) graph: the picture in, the probabilities out.

After quantize_static and quantize_before_space_to_depth (models/int8graph.py) the shipped
network's INT8 graph begins FP32 input -> QuantizeLinear -> SpaceToDepth(2) -> (a layout change
ONNX Runtime adds) -> QLinearConv, and ends QLinearConv -> DequantizeLinear -> Softmax. Measured on
a 2-core Xeon (AVX512-VNNI, one thread, profiler): the quantize, SpaceToDepth and layout change
took 0.9 ms of an 8.9 ms INT8 run, the softmax over 7 channels 0.4 ms.

  pixel-blocks    the graph reads the picture itself: its RGB bytes in 2x2 blocks, NHWC uint8
                  (1, H/2, W/2, 12), the layout ONNX Runtime's uint8 convolution wants, made by
                  the runtime in one OpenCV pass (Preprocess.blocks). The normalisation
                  (x / 255 - mean) / std moves into the first convolution: its input scale
                  becomes 1 / (255 std) and its bias takes the means. A pixel needs no rounding
                  then (the float input's quantization rounded half of all 8-bit values of the
                  shipped model's input by half a step); the one difference from the float input
                  is the convolution's padding, the top row and left column of blocks, which
                  reads the zero point (the mean grey level, rounded) instead of the exact mean.
                  Needs one std for the three channels (a convolution's input scale is one number).
  bounded-softmax Softmax over the channels of a dequantized uint8 tensor becomes Exp, ReduceSum
                  and Div: the dequantized values are bounded by the scale and zero point, so no
                  maximum needs subtracting first while that bound is under 80 (exp(80) and
                  exp(-80) are well inside float32). The same function, to float rounding.

Each returns whether it applied; a graph that does not match is left as it was.
"""
from __future__ import annotations

import numpy as np

from models.int8graph import _array, _attrs, _drop_unused_initializers, _tensor, _users

ENDS = ("pixel-blocks", "bounded-softmax")
EXP_BOUND = 80.0     # |x| below this: exp(x) and a sum of thousands of them stay finite and normal in float32


def pixel_blocks_input(model, mean: tuple[float, float, float], std: tuple[float, float, float]) -> bool:
    """Make the quantized model read the picture in 2x2 blocks (see the module's docstring)."""
    from onnx import TensorProto, helper

    graph = model.graph
    if len(graph.input) != 1 or max(std) - min(std) > 1e-9 * max(std):
        return False
    image = graph.input[0]
    users = _users(graph)
    inits = {t.name: t for t in graph.initializer}
    quant = users.get(image.name, [])
    if len(quant) != 1 or quant[0].op_type != "QuantizeLinear":
        return False
    quant = quant[0]
    q_zero = _array(inits, quant.input[2]) if len(quant.input) > 2 else np.zeros((), np.uint8)
    if q_zero is None or q_zero.dtype != np.uint8:
        return False                                      # int8 activations: a picture's bytes are not their type
    s2d = users.get(quant.output[0], [])
    if len(s2d) != 1 or s2d[0].op_type != "SpaceToDepth" or _attrs(s2d[0]).get("blocksize") != 2:
        return False
    s2d = s2d[0]
    conv = users.get(s2d.output[0], [])
    if len(conv) != 1 or conv[0].op_type != "QLinearConv" or conv[0].input[0] != s2d.output[0]:
        return False
    conv = conv[0]
    s_in, weights, w_zero = (_array(inits, conv.input[i]) for i in (1, 3, 5))
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim]
    if (s_in is None or s_in.size != 1 or weights is None or weights.ndim != 4 or weights.shape[1] != 12
            or w_zero is None or len(dims) != 4 or dims[1] != 3 or not all(dims[2:]) or dims[2] % 2 or dims[3] % 2):
        return False
    bias = _array(inits, conv.input[8]) if len(conv.input) > 8 and conv.input[8] else None
    bias = np.zeros(weights.shape[0], np.int32) if bias is None else bias
    scale = 1.0 / (255.0 * std[0])                        # one pixel level, in the normalised input's units
    levels = 255.0 * np.asarray(mean, np.float64)         # each channel's mean, in pixel levels
    zero = int(np.clip(np.round(levels.mean()), 0, 255))
    # sum_k (w - w0)(n_k) with n = scale (x - level_c) = scale (x - zero) + scale (zero - level_c):
    # the second part is a constant per output channel, in the bias's units (input scale x weight scale)
    w = weights.astype(np.float64) - w_zero.astype(np.float64).reshape(-1, 1, 1, 1)   # per tensor or per channel
    shift = ((zero - levels[np.arange(12) % 3])[None, :, None, None] * w).sum(axis=(1, 2, 3))
    new_bias = np.round(bias.astype(np.float64) * float(s_in) / scale + shift)
    if np.abs(new_bias).max() >= 2 ** 31:
        return False
    name = "pixels"
    tensors = [_tensor(np.array(scale, np.float32), f"{name}_scale"),
               _tensor(np.array(zero, np.uint8), f"{name}_zero_point"),
               _tensor(new_bias.astype(np.int32), f"{conv.name or conv.output[0]}_bias_from_pixels")]
    to_nchw = helper.make_node("Transpose", [name], [f"{name}_nchw"], name=f"{name}_nchw", perm=[0, 3, 1, 2])
    conv.input[0], conv.input[1], conv.input[2] = to_nchw.output[0], tensors[0].name, tensors[1].name
    if len(conv.input) > 8:
        conv.input[8] = tensors[2].name
    else:
        conv.input.append(tensors[2].name)
    nodes = [to_nchw] + [n for n in graph.node if n is not quant and n is not s2d]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(tensors)
    del graph.input[:]
    batch = image.type.tensor_type.shape.dim[0]
    graph.input.append(helper.make_tensor_value_info(
        name, TensorProto.UINT8, [batch.dim_param or batch.dim_value or None, dims[2] // 2, dims[3] // 2, 12]))
    _drop_unused_initializers(graph)
    return True


def bounded_softmax(model) -> bool:
    """Softmax (opset 13+) of a per-tensor DequantizeLinear's uint8 output -> Exp, ReduceSum, Div,
    where the dequantized values' bound is under EXP_BOUND; True if one was replaced."""
    from onnx import helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        return False           # before 13 Softmax flattens the trailing axes; not this rewrite's pattern
    makers = {n.output[0]: n for n in graph.node}
    inits = {t.name: t for t in graph.initializer}
    for i, node in enumerate(graph.node):
        source = makers.get(node.input[0]) if node.op_type == "Softmax" else None
        if source is None or source.op_type != "DequantizeLinear":
            continue
        scale, zero = _array(inits, source.input[1]), _array(inits, source.input[2]) if len(source.input) > 2 else None
        zero = np.zeros(1, np.uint8) if zero is None else zero
        if scale is None or scale.size != 1 or zero.size != 1 or zero.dtype != np.uint8:
            continue
        if float(scale) * max(int(zero), 255 - int(zero)) >= EXP_BOUND:
            continue
        name = node.name or node.output[0]
        axes = _tensor(np.array([_attrs(node).get("axis", -1)], np.int64), f"{name}_axes")
        nodes = [helper.make_node("Exp", [node.input[0]], [f"{name}_exp"], name=f"{name}_exp"),
                 helper.make_node("ReduceSum", [f"{name}_exp", axes.name], [f"{name}_sum"], name=f"{name}_sum",
                                  keepdims=1),
                 helper.make_node("Div", [f"{name}_exp", f"{name}_sum"], list(node.output), name=f"{name}_div")]
        graph.node.remove(node)
        for k, new in enumerate(nodes):
            graph.node.insert(i + k, new)
        graph.initializer.append(axes)
        return True
    return False


def picture_agreement(before, after, frames: np.ndarray, pre) -> float:
    """The share of output cells whose top class is the same for the float-input graph `before`
    and the picture-input graph `after` on `frames` (model inputs, as calibration_frames makes
    them; the pictures are recovered from them exactly)."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                for m in (before, after)]
    mean, std = np.asarray(pre.mean, np.float64), np.asarray(pre.std, np.float64)
    same, cells = 0, 0
    for x in frames:
        x = x.reshape(1, *x.shape[-3:]).astype(np.float32)
        rgb = np.round((x[0].transpose(1, 2, 0) * std + mean) * 255).clip(0, 255).astype(np.uint8)
        a = sessions[0].run(None, {sessions[0].get_inputs()[0].name: x})
        b = sessions[1].run(None, {sessions[1].get_inputs()[0].name: pre.blocks(rgb)})
        pa, pb = (next(o for o in outs if o.ndim == 4) for outs in (a, b))
        same += int((pa.argmax(axis=1) == pb.argmax(axis=1)).sum())
        cells += pa.shape[0] * pa.shape[2] * pa.shape[3]
    return same / max(cells, 1)
