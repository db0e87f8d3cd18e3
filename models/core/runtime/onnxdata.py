"""Which files an ONNX model makes ONNX Runtime read besides itself: the `location` of every
tensor stored as external data.

ONNX Runtime opens those files next to model.onnx when it builds a session, so the manifest must
list and hash each one (export lists them; a verified load refuses any it does not list). Found
by walking the protobuf wire format of only the messages that can hold tensors, so a display
install needs no `onnx` package:

    ModelProto        graph (7), training_info (20), functions (25)
    TrainingInfoProto initialization (1), algorithm (2)            -> GraphProto
    GraphProto        node (1), initializer (5), sparse_initializer (15)
    FunctionProto     node (7), attribute_proto (11)
    NodeProto         attribute (5)
    AttributeProto    t (5), g (6), tensors (10), graphs (11), sparse_tensor (22), sparse_tensors (23)
    SparseTensorProto values (1), indices (2)
    TensorProto       external_data (13: key 1, value 2), data_location (14: 1 = EXTERNAL)

Iterative, with a depth limit; a malformed buffer is a ValueError.
"""
from __future__ import annotations

MODEL, TRAINING, GRAPH, FUNCTION, NODE, ATTRIBUTE, SPARSE, TENSOR = range(8)
CHILDREN = {                       # message -> {field number: message kind of that field}
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    TRAINING: {1: GRAPH, 2: GRAPH},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    FUNCTION: {7: NODE, 11: ATTRIBUTE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    SPARSE: {1: TENSOR, 2: TENSOR},
}
EXTERNAL_DATA, DATA_LOCATION, EXTERNAL = 13, 14, 1
MAX_DEPTH = 64                     # subgraphs nest; real models stay far below this


def external_data_files(model: bytes) -> list[str]:
    """The external-data locations (as written, relative to model.onnx's folder) that an ONNX
    model's tensors name, in order, without repeats."""
    found: list[str] = []
    stack = [(memoryview(model), MODEL, 0)]
    while stack:
        buf, kind, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"messages nested more than {MAX_DEPTH} deep")
        if kind == TENSOR:
            location = _tensor_location(buf)
            if location is not None and location not in found:
                found.append(location)
            continue
        children = CHILDREN[kind]
        for number, wire, value in _fields(buf):
            if wire == 2 and number in children:
                stack.append((value, children[number], depth + 1))
    return found


def _tensor_location(buf: memoryview) -> str | None:
    location, external = None, False
    for number, wire, value in _fields(buf):
        if number == DATA_LOCATION and wire == 0:
            external = value == EXTERNAL
        elif number == EXTERNAL_DATA and wire == 2:
            entry = {n: bytes(v) for n, w, v in _fields(value) if w == 2 and n in (1, 2)}
            if entry.get(1) == b"location":
                try:
                    location = entry.get(2, b"").decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("an external-data location is not UTF-8") from None
    if external and not location:
        raise ValueError("a tensor stored as external data names no location")
    return location


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message: ints for varints, memoryviews for
    length-delimited fields, None for fixed-width ones."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            value, pos = None, pos + (8 if wire == 1 else 4)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if pos >= len(buf):
            raise ValueError("truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("protobuf varint longer than 10 bytes")
