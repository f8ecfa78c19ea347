"""A Sparkplug B encoder written from the protobuf wire format, independent
of the generated classes the bridge decodes with: the tests build payloads
with it (and hostile ones the generated classes would refuse to build).

Field numbers are sparkplug_b.proto's. Integers of the signed types are put
on the wire as the specification says: Int8/16/32 two's complement in the
32-bit int_value, Int64 in the 64-bit long_value.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
DATASET, BYTES, TEMPLATE = 16, 17, 19


def varint(n: int) -> bytes:
    assert n >= 0
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def f_varint(field: int, n: int) -> bytes:
    return key(field, 0) + varint(n)


def f_bytes(field: int, data: bytes) -> bytes:
    return key(field, 2) + varint(len(data)) + data


def f_str(field: int, text: str) -> bytes:
    return f_bytes(field, text.encode())


def value_field(datatype: int, value: object) -> bytes:  # noqa: PLR0911 (one per field)
    """The value of a metric (field numbers 10-18) by its datatype."""
    if datatype in (INT8, INT16, INT32, UINT8, UINT16, UINT32):
        return f_varint(10, int(value) & 0xFFFFFFFF)  # type: ignore[call-overload]
    if datatype in (INT64, UINT64, DATETIME):
        return f_varint(11, int(value) & 0xFFFFFFFFFFFFFFFF)  # type: ignore[call-overload]
    if datatype == FLOAT:
        return key(12, 5) + struct.pack("<f", value)
    if datatype == DOUBLE:
        return key(13, 1) + struct.pack("<d", value)
    if datatype == BOOLEAN:
        return f_varint(14, int(bool(value)))
    if datatype in (STRING, TEXT):
        return f_str(15, str(value))
    if datatype == BYTES:
        return f_bytes(16, bytes(value))  # type: ignore[call-overload]
    raise ValueError(datatype)


def metric(
    name: str | None = None,
    alias: int | None = None,
    datatype: int | None = None,
    value: object = None,
    *,
    timestamp: int | None = None,
    historical: bool = False,
    transient: bool = False,
    null: bool = False,
    raw_value: bytes = b"",
    value_type: int | None = None,
) -> bytes:
    """One Metric. ``value`` is put in the field ``value_type`` (default:
    ``datatype``) travels in; ``raw_value`` is appended as it is."""
    out = b""
    if name is not None:
        out += f_str(1, name)
    if alias is not None:
        out += f_varint(2, alias)
    if timestamp is not None:
        out += f_varint(3, timestamp)
    if datatype is not None:
        out += f_varint(4, datatype)
    if historical:
        out += f_varint(5, 1)
    if transient:
        out += f_varint(6, 1)
    if null:
        out += f_varint(7, 1)
    if value is not None:
        out += value_field(value_type or datatype or 0, value)
    return out + raw_value


def payload(
    metrics: Iterable[bytes], *, timestamp: int | None = None, seq: int | None = None
) -> bytes:
    out = b""
    if timestamp is not None:
        out += f_varint(1, timestamp)
    for m in metrics:
        out += f_bytes(2, m)
    if seq is not None:
        out += f_varint(3, seq)
    return out


def dataset(columns: list[str], types: list[int], rows: list[list[object]]) -> bytes:
    """A DataSet (metric field 17)."""
    out = f_varint(1, len(columns))
    for c in columns:
        out += f_str(2, c)
    for t in types:
        out += f_varint(3, t)
    for row in rows:
        elements = b""
        for t, v in zip(types, row, strict=True):
            # DataSetValue's fields are the Metric value fields minus 9
            inner = value_field(t, v)
            field = (inner[0] >> 3) - 9
            elements += f_bytes(1, key(field, inner[0] & 7) + inner[1:])
        out += f_bytes(4, elements)
    return f_bytes(17, out)


def template(members: Iterable[bytes], *, definition: bool = False) -> bytes:
    """A Template (metric field 18) of member metrics."""
    out = b"".join(f_bytes(2, m) for m in members)
    if definition:
        out += f_varint(5, 1)
    return f_bytes(18, out)
