"""Which tensors of an ONNX file keep their data in other files, read from the protobuf wire format.

The onnx package answers this too, but importing it costs about a second of every worker's start (measured
with `python -X importtime`), and the worker needs nothing else from it. Field numbers are onnx.proto's.
"""

from __future__ import annotations

from collections.abc import Iterator

_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# message -> {field number: message it holds}; only the paths on which a tensor can sit
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION = range(7)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION},  # graph, functions
    _FUNCTION: {7: _NODE},  # node
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},  # attribute
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},  # t, g, tensors, ...
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # values, indices
}
_TENSOR_NAME, _TENSOR_DATA_LOCATION = 8, 14


class NotProtobuf(ValueError):
    """The bytes are not a well-formed protobuf message."""


def external_tensors(model: bytes) -> list[str]:
    """Names of the tensors whose data_location is EXTERNAL, in the graph, its subgraphs and functions."""
    return [name for kind, fields in _walk(memoryview(model), _MODEL) if kind == _TENSOR
            for name in [_tensor_name(fields)] if fields.get(_TENSOR_DATA_LOCATION) == EXTERNAL]


def _tensor_name(fields: dict[int, int | bytes]) -> str:
    name = fields.get(_TENSOR_NAME, b"")
    return bytes(name).decode("utf-8", "replace") if isinstance(name, bytes | memoryview) else ""


def _walk(data: memoryview, kind: int) -> Iterator[tuple[int, dict[int, int | bytes]]]:
    """Every message on a tensor's path, depth first, with its scalar fields (last value wins, as protobuf)."""
    fields: dict[int, int | bytes] = {}
    children = _CHILDREN.get(kind, {})
    for number, value in _fields(data):
        if isinstance(value, memoryview) and number in children:
            yield from _walk(value, children[number])
        else:
            fields[number] = bytes(value) if isinstance(value, memoryview) else value
    yield kind, fields


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, at = _varint(data, at)
            yield number, value
        elif wire == _LENGTH_DELIMITED:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise NotProtobuf("a field runs past the end")
            yield number, data[at:at + size]
            at += size
        elif wire in (_FIXED64, _FIXED32):
            at += 8 if wire == _FIXED64 else 4
        else:
            raise NotProtobuf(f"wire type {wire} at byte {at}")
    if at != len(data):
        raise NotProtobuf("a fixed-size field runs past the end")


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise NotProtobuf("a truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at
