"""The graph inputs of an ONNX file and their dimensions, read straight from its protobuf wire
format: the run-time path needs the names of symbolic dimensions (to check a stored
free-dimension override) without importing onnx. The file is memory-mapped and every field but
``graph.input`` is skipped by its length, so weights are never read.

ModelProto.graph = 7; GraphProto.input = 11; ValueInfoProto.name = 1, .type = 2;
TypeProto.tensor_type = 1; TypeProto.Tensor.shape = 2; TensorShapeProto.dim = 1;
Dimension.dim_value = 1, .dim_param = 2.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

Dim = int | str | None
Inputs = dict[str, tuple[Dim, ...]]


class _Malformed(Exception):
    pass


def _varint(buf: memoryview | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview | mmap.mmap, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field, and (number, value, -1) of
    each varint; other wire types are skipped."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, value, -1
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Malformed
            yield number, pos, pos + size
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed
    if pos != end:
        raise _Malformed


def _sub(
    buf: memoryview | mmap.mmap, start: int, end: int, number: int
) -> Iterator[tuple[int, int]]:
    for n, s, e in _fields(buf, start, end):
        if n == number and e >= 0:
            yield s, e


def _dims(buf: memoryview | mmap.mmap, start: int, end: int) -> tuple[Dim, ...] | None:
    for t_start, t_end in _sub(buf, start, end, 2):  # ValueInfoProto.type
        for tt_start, tt_end in _sub(buf, t_start, t_end, 1):  # tensor_type
            for s_start, s_end in _sub(buf, tt_start, tt_end, 2):  # shape
                dims: list[Dim] = []
                for d_start, d_end in _sub(buf, s_start, s_end, 1):  # dim
                    dim: Dim = None
                    for n, s, e in _fields(buf, d_start, d_end):
                        if n == 1 and e < 0:
                            dim = s
                        elif n == 2 and e >= 0:
                            dim = bytes(buf[s:e]).decode("utf-8", "replace")
                    dims.append(dim)
                return tuple(dims)
    return None


def graph_inputs(path: str | os.PathLike[str]) -> Inputs | None:
    """Each graph input's dimensions (an int, a symbolic name, or None for an unnamed one), or
    None if the file cannot be read as an ONNX model."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            out: Inputs = {}
            for g_start, g_end in _sub(buf, 0, len(buf), 7):
                for i_start, i_end in _sub(buf, g_start, g_end, 11):
                    name = None
                    for n, s, e in _fields(buf, i_start, i_end):
                        if n == 1 and e >= 0:
                            name = bytes(buf[s:e]).decode("utf-8", "replace")
                    dims = _dims(buf, i_start, i_end)
                    if name is not None and dims is not None:
                        out[name] = dims
            return out
    except (OSError, ValueError, _Malformed):
        return None
