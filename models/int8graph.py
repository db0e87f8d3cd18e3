"""Exact FP32 rewrites of an ONNX graph that let ONNX Runtime run its INT8 version in uint8 end to end.

ONNX Runtime runs a quantized (QOperator) graph's convolutions in uint8, channels last. Every
operator it has no uint8 kernel for is left in FP32, and each one costs a dequantize, a layout
change to channels first and back, and a quantize: on the shipped network (2-core Xeon, AVX512
VNNI, one thread) the four bilinear up-samplings (a fixed depthwise ConvTranspose) and the five
average pools, with their conversions, took about a fifth of the INT8 model's time. Its first
convolution, 3 input channels at full resolution, was slower in INT8 than in FP32 (2.2-2.5 ms
against 0.7-0.9 ms in the slow phase of that machine): uint8 kernels are built for channel
counts that fill a vector, not for 3.

Three rewrites, each giving the same numbers as the graph it replaces (FP32, to rounding):

  stem-space-to-depth   a 3x3, stride-2, pad-1 convolution on the graph's input becomes
                        SpaceToDepth(2) and a 2x2, stride-1 convolution on 4x the channels
                        (padded one row and column at the top and left); the same sums.
  bilinear-resize       a ConvTranspose whose weights are the fixed bilinear kernel
                        (models.nets.bilinear.bilinear_kernel; depthwise, no bias) becomes
                        Resize(linear, half_pixel) times a constant border map: inside, the two
                        are the same interpolation; at the outermost outputs the transposed
                        convolution also reads the zero padding, which the map's factors (< 1)
                        reproduce.
  pool-conv             an AveragePool becomes a depthwise convolution with weights 1/(kh*kw)
                        and, when it excludes padding from the count, times a constant map of
                        kh*kw / (pixels counted).

Resize then runs in uint8 (it is added to the quantized operators), the convolutions and maps
(QLinearMul) too. rewrite_for_int8 applies each where its pattern matches exactly and leaves
every other node alone; quantize_onnx checks the rewritten FP32 graph against the original on
calibration frames before quantizing (same_outputs).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from models.core.errors import EndoSpineError

REWRITES = ("stem-space-to-depth", "bilinear-resize", "pool-conv")


def rewrite_for_int8(model, rewrites: tuple[str, ...] = REWRITES):
    """(model, counts): a copy of the ONNX ModelProto with the named rewrites applied where their
    patterns match (shapes inferred, weights from initializers), and how often each applied."""
    import onnx

    unknown = set(rewrites) - set(REWRITES)
    if unknown:
        raise ValueError(f"unknown INT8 rewrites {sorted(unknown)}; known: {REWRITES}")
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    inits = {t.name: t for t in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    makers = {"stem-space-to-depth": _stem_space_to_depth, "bilinear-resize": _bilinear_resize if opset >= 11 else None,
              "pool-conv": _pool_conv}
    inputs = {i.name for i in graph.input}
    counts: Counter = Counter()
    nodes = []
    for node in graph.node:
        for name in rewrites:
            maker = makers[name]
            new = maker(node, shapes, inits, inputs) if maker else None
            if new is not None:
                replaced, initializers = new
                nodes.extend(replaced)
                graph.initializer.extend(initializers)
                counts[name] += 1
                break
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    return model, {name: counts[name] for name in rewrites}


def same_outputs(before, after, frames: np.ndarray, tolerance: float = 1e-4) -> float:
    """The largest difference between the outputs of two FP32 ONNX models (ModelProto or path)
    on `frames` (n, 1, C, H, W), relative to 1 + the output's magnitude; one-line error above
    `tolerance` (a rewrite that is not exact is never quantized)."""
    import onnxruntime as ort

    def session(model):
        blob = model if isinstance(model, (str, bytes)) else model.SerializeToString()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])

    a, b = session(before), session(after)
    name = a.get_inputs()[0].name
    worst = 0.0
    for frame in frames:
        feed = {name: np.ascontiguousarray(frame, dtype=np.float32)}
        for x, y in zip(a.run(None, feed), b.run(None, feed)):
            worst = max(worst, float(np.abs(x - y).max() / (1.0 + np.abs(x).max())))
    if worst > tolerance:
        raise EndoSpineError(f"INT8 graph rewrite changed the FP32 outputs by {worst:.2e} (> {tolerance:.0e}); "
                             "not quantized")
    return worst


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _array(inits: dict, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]) if name in inits else None


def _tensor(array: np.ndarray, name: str):
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def _ones(values, n: int) -> bool:
    return values is None or list(values) == [1] * n


def _auto_pad(a: dict) -> bool:
    """The node pads by auto_pad rather than by its explicit pads."""
    return a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")


def _channel_map(values: np.ndarray, channels: int, name: str):
    """A constant (1, C, H, W) map: the same H x W factors in every channel. Full-size rather than
    (1, 1, H, W): ONNX Runtime's QLinearMul broadcasting one value per pixel over the channels
    (last, in its uint8 layout) was 0.15-0.2 ms slower over the shipped network's seven maps."""
    return _tensor(np.ascontiguousarray(np.broadcast_to(values.astype(np.float32), (1, channels, *values.shape))), name)


def _stem_space_to_depth(node, shapes, inits, inputs):
    """Conv(3x3, stride 2, pad 1) on a graph input -> SpaceToDepth(2) + Conv(2x2, pad top/left)."""
    from onnx import helper

    if node.op_type != "Conv" or node.input[0] not in inputs:
        return None
    a = _attrs(node)
    w = _array(inits, node.input[1])
    shape = shapes.get(node.input[0], [])
    if (w is None or w.ndim != 4 or list(w.shape[2:]) != [3, 3] or a.get("strides") != [2, 2]
            or a.get("pads") != [1, 1, 1, 1] or a.get("group", 1) != 1 or not _ones(a.get("dilations"), 2)
            or _auto_pad(a) or len(shape) != 4
            or not all(shape[2:]) or shape[2] % 2 or shape[3] % 2):
        return None
    cout, c = w.shape[:2]
    packed = np.zeros((cout, 4 * c, 2, 2), np.float32)
    # tap d of the 3x3 kernel at output i reads input 2i-1+d: block i-1 phase 1 (d=0), block i phase 0 / 1 (d=1 / 2);
    # SpaceToDepth puts phase (pr, pc) of channel ch at channel (pr*2 + pc)*C + ch
    place = {0: (0, 1), 1: (1, 0), 2: (1, 1)}
    for di, (bi, pr) in place.items():
        for dj, (bj, pc) in place.items():
            packed[:, (pr * 2 + pc) * c:(pr * 2 + pc + 1) * c, bi, bj] = w[:, :, di, dj]
    s2d = f"{node.name or node.output[0]}_s2d"
    weight = _tensor(packed, f"{node.input[1]}_s2d")
    conv = helper.make_node("Conv", [f"{s2d}_out", weight.name, *node.input[2:]], list(node.output),
                            name=f"{s2d}_conv", kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0],
                            dilations=[1, 1], group=1)
    return [helper.make_node("SpaceToDepth", [node.input[0]], [f"{s2d}_out"], name=s2d, blocksize=2), conv], [weight]


def _bilinear_weights(w: np.ndarray, factor: int) -> bool:
    """w (C, 1, k, k) is the fixed bilinear up-sampling kernel for `factor` in every channel."""
    from models.nets.bilinear import bilinear_kernel

    kernel = bilinear_kernel(factor)
    return w.shape[1:] == (1, *kernel.shape) and bool(np.allclose(w, kernel[None, None], atol=1e-6))


def _upsample_map(n: int, factor: int) -> np.ndarray:
    """Per output position, the bilinear weights that fall inside the n inputs (1 inside, < 1 at
    the ends, where a transposed convolution reads zeros and Resize repeats the edge)."""
    pos = (np.arange(n * factor) + 0.5) / factor - 0.5
    inputs = np.arange(n)
    return np.clip(1 - np.abs(pos[:, None] - inputs[None, :]), 0, None).sum(axis=1)


def _bilinear_resize(node, shapes, inits, inputs):
    """ConvTranspose(fixed bilinear kernel, stride f) -> Resize(linear, half_pixel) x border map."""
    from onnx import helper

    if node.op_type != "ConvTranspose" or len(node.input) > 3:
        return None
    a = _attrs(node)
    w = _array(inits, node.input[1])
    bias = _array(inits, node.input[2]) if len(node.input) == 3 and node.input[2] else None
    shape = shapes.get(node.input[0], [])
    strides = a.get("strides", [1, 1])
    if (w is None or w.ndim != 4 or len(shape) != 4 or not all(shape[1:]) or len(set(strides)) != 1
            or a.get("group", 1) != shape[1] or w.shape[0] != shape[1] or not _ones(a.get("dilations"), 2)
            or a.get("output_padding") or a.get("output_shape") or _auto_pad(a)
            or (bias is not None and np.any(bias)) or (len(node.input) == 3 and node.input[2] and bias is None)):
        return None
    factor = strides[0]
    size = 2 * factor - factor % 2
    if a.get("pads") != [(size - factor) // 2] * 4 or not _bilinear_weights(w, factor):
        return None
    name = node.name or node.output[0]
    scales = _tensor(np.array([1, 1, factor, factor], np.float32), f"{name}_scales")
    border = _channel_map(np.outer(_upsample_map(shape[2], factor), _upsample_map(shape[3], factor)), shape[1],
                          f"{name}_border")
    resize = helper.make_node("Resize", [node.input[0], "", scales.name], [f"{name}_resized"], name=f"{name}_resize",
                              mode="linear", coordinate_transformation_mode="half_pixel")
    mul = helper.make_node("Mul", [f"{name}_resized", border.name], list(node.output), name=f"{name}_border")
    return [resize, mul], [scales, border]


def _pool_counts(size: int, kernel: int, stride: int, before: int, after: int) -> np.ndarray:
    """Per output position, how many of the pool window's pixels are inside the input."""
    start = np.arange((size + before + after - kernel) // stride + 1) * stride - before
    return np.minimum(start + kernel, size) - np.maximum(start, 0)


def _pool_conv(node, shapes, inits, inputs):
    """AveragePool -> depthwise Conv (weights 1/window) [x kh*kw / counted-pixels map]."""
    from onnx import helper

    if node.op_type != "AveragePool":
        return None
    a = _attrs(node)
    shape = shapes.get(node.input[0], [])
    kernel = a.get("kernel_shape", [])
    if (len(kernel) != 2 or len(shape) != 4 or not all(shape[1:]) or a.get("ceil_mode", 0)
            or not _ones(a.get("dilations"), 2) or _auto_pad(a) or len(node.output) != 1):
        return None
    strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    c, h, w = shape[1:]
    name = node.name or node.output[0]
    window = kernel[0] * kernel[1]
    weight = _tensor(np.full((c, 1, *kernel), 1.0 / window, np.float32), f"{name}_dw")
    counts = np.outer(_pool_counts(h, kernel[0], strides[0], pads[0], pads[2]),
                      _pool_counts(w, kernel[1], strides[1], pads[1], pads[3]))
    exact = a.get("count_include_pad", 0) or bool(np.all(counts == window))
    out = list(node.output) if exact else [f"{name}_sum"]
    conv = helper.make_node("Conv", [node.input[0], weight.name], out, name=f"{name}_dwconv", kernel_shape=kernel,
                            strides=strides, pads=pads, dilations=[1, 1], group=c)
    if exact:
        return [conv], [weight]
    scale = _channel_map(window / counts, c, f"{name}_counted")
    mul = helper.make_node("Mul", [out[0], scale.name], list(node.output), name=f"{name}_counted")
    return [conv, mul], [weight, scale]


def quantize_before_space_to_depth(model) -> bool:
    """In a quantized model, SpaceToDepth on the FP32 input followed by a per-tensor QuantizeLinear
    becomes QuantizeLinear then SpaceToDepth on uint8 (a permutation commutes with per-tensor
    quantization: the same bytes, a quarter of the memory moved). True if it was there."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    users = _users(graph)
    for s2d in graph.node:
        after = users.get(s2d.output[0], [])
        if s2d.op_type != "SpaceToDepth" or s2d.input[0] not in inputs or len(after) != 1:
            continue
        quant = after[0]
        inits = {t.name: t for t in graph.initializer}
        scale = _array(inits, quant.input[1]) if quant.op_type == "QuantizeLinear" else None
        if scale is None or scale.size != 1:
            continue
        moved = f"{quant.output[0]}_before_s2d"
        quant.input[0], s2d.input[0] = s2d.input[0], moved
        s2d.output[0], quant.output[0] = quant.output[0], moved
        order = [n for n in graph.node if n is not quant and n is not s2d]
        del graph.node[:]
        graph.node.extend([quant, s2d, *order])
        return True
    return False


def _users(graph) -> dict[str, list]:
    """Each tensor name -> the nodes that read it."""
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _drop_unused_initializers(graph) -> None:
    """The replaced nodes' weights go; a name the graph lists as an input or output stays (older
    exporters list initializers among the inputs)."""
    used = {name for node in graph.node for name in node.input}
    used |= {v.name for v in [*graph.input, *graph.output]}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
