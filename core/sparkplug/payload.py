"""One Sparkplug B payload, statelessly: protobuf bytes to metrics, and a
metric's value by its declared datatype.

    bytes --parse--> Payload (protobuf, checked against the limits)
    Metric + datatype (from the metric, or its birth) --values--> [(suffix, value)]

Contract:
  * ``parse`` returns a ``Parsed`` or raises ``CodecError``; whatever the
    bytes, nothing else escapes. Too large (``payload_too_large``), too many
    metrics (``too_many_points``) and undecodable protobuf with no complete
    metric before the damage (``malformed_protobuf``) reject the whole
    message. A payload cut short keeps the metrics before the cut and
    reports the cut as ``truncated_protobuf`` (``Parsed.damage``).
  * ``values`` returns what one metric stores, or raises ``Rejected`` with
    the reason: ``wrong_type`` (the value field does not fit the datatype),
    ``unsupported_type`` (Bytes, File, arrays, PropertySets),
    ``not_numeric`` (a DataSet column or Template member that is neither a
    number, a boolean nor a string), ``non_finite_value``. A value is a float
    (numbers, booleans as 0/1, DateTime as epoch ms) or a str (String, Text,
    UUID: stored as text). A DataSet becomes one value per cell,
    ``<row>.<column>``; a Template one per member, ``<member>``, nested
    members joined with ``.``: the caller appends the suffix to the metric.
  * Int8/16/32 travel in the unsigned ``int_value`` and Int64 in
    ``long_value``: they are sign-extended by the declared width, so -12 as
    an Int32 (4294967284 on the wire) is -12.

The generated classes (``sparkplug_b_pb2``) parse: chosen by
bench/bench_sparkplug.py over a hand-written decoder and the pysparkplug
package (figures in bench/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from core.limits import Limits
from core.rules import CodecError, Rejected, show
from core.sparkplug import sparkplug_b_pb2 as pb
from core.types import Reject

Payload = pb.Payload
Metric = pb.Payload.Metric

# DataType numbers (sparkplug_b.proto)
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT, UUID = 9, 10, 11, 12, 13, 14, 15
DATASET, TEMPLATE = 16, 19

_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_UNSIGNED = {UINT8, UINT16, UINT32, UINT64}
# The value field each datatype travels in.
_FIELD = {
    INT8: "int_value",
    INT16: "int_value",
    INT32: "int_value",
    INT64: "long_value",
    UINT8: "int_value",
    UINT16: "int_value",
    UINT32: "int_value",
    UINT64: "long_value",
    FLOAT: "float_value",
    DOUBLE: "double_value",
    BOOLEAN: "boolean_value",
    STRING: "string_value",
    DATETIME: "long_value",
    TEXT: "string_value",
    UUID: "string_value",
    DATASET: "dataset_value",
    TEMPLATE: "template_value",
}
_TEXT_TYPES = {STRING, TEXT, UUID}
# Types this bridge does not store, by name for the detail.
_UNSUPPORTED = {
    17: "Bytes",
    18: "File",
    20: "PropertySet",
    21: "PropertySetList",
    **dict(enumerate(
        ("Int8Array", "Int16Array", "Int32Array", "Int64Array", "UInt8Array", "UInt16Array",
         "UInt32Array", "UInt64Array", "FloatArray", "DoubleArray", "BooleanArray",
         "StringArray", "DateTimeArray"),
        start=22,
    )),
}  # fmt: skip
MAX_NESTING = 8  # Templates within Templates, deeper than this is refused
MAX_ALIAS = 2**63 - 1  # aliases are kept in PostgreSQL bigint

Value = float | str


class Parsed(NamedTuple):
    payload: pb.Payload
    damage: Reject | None  # the payload was cut short: metrics before the cut are kept


def parse(data: bytes, limits: Limits) -> Parsed:
    if len(data) > limits.max_payload_bytes:
        raise CodecError(
            "payload_too_large",
            f"payload is {len(data)} bytes; the limit is {limits.max_payload_bytes}",
        )
    payload = pb.Payload()
    damage = None
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        payload, damage = _salvage(data, str(exc))
    count = len(payload.metrics)
    if count > limits.max_points_per_message:
        raise CodecError(
            "too_many_points",
            f"{count} metrics; the limit is {limits.max_points_per_message} per message",
        )
    return Parsed(payload, damage)


def _salvage(data: bytes, error: str) -> tuple[pb.Payload, Reject]:
    """The complete top-level fields before the damage, parsed one by one
    (only when the whole failed, so the good path pays nothing)."""
    kept = pb.Payload()
    offset = 0
    for end in _field_ends(data):
        try:
            kept.MergeFromString(data[offset:end])
        except DecodeError:
            break
        offset = end
    if offset == 0:
        raise CodecError("malformed_protobuf", f"not a Sparkplug B payload: {error}")
    detail = (
        f"payload damaged after byte {offset} of {len(data)} ({error}); "
        f"{len(kept.metrics)} metric(s) before it kept"
    )
    return kept, Reject("truncated_protobuf", detail)


def _field_ends(data: bytes) -> list[int]:
    """Where each complete top-level protobuf field of ``data`` ends, up to
    the first that is cut short or unreadable."""
    ends = []
    pos, size = 0, len(data)
    while pos < size:
        tag, pos = _varint(data, pos)
        if pos < 0:
            break  # the tag itself is cut short
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            break
        if pos > size or pos < 0:
            break
        ends.append(pos)
    return ends


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return 0, -1  # cut short: callers stop at a negative position


# --- values -----------------------------------------------------------------


def values(metric: Metric, datatype: int, name: str) -> list[tuple[str, Value]]:
    """What ``metric`` stores, as (suffix, value) pairs: one with suffix ""
    for a scalar, one per cell or member for a DataSet or Template. ``name``
    only names the metric in a detail."""
    return _values(metric, datatype, name, 0)


def _values(metric: Metric, datatype: int, name: str, depth: int) -> list[tuple[str, Value]]:
    if datatype == DATASET:
        return _dataset(_field(metric, datatype, name), name)
    if datatype == TEMPLATE:
        return _template(_field(metric, datatype, name), name, depth)
    return [("", scalar(_field(metric, datatype, name), datatype, name))]


def _field(metric: Metric, datatype: int, name: str) -> object:
    """The raw value of the field ``datatype`` travels in; Rejected if it is
    another field or the type is one this bridge does not store."""
    field = _FIELD.get(datatype)
    if field is None:
        unsupported = _UNSUPPORTED.get(datatype)
        if unsupported is not None:
            raise Rejected("unsupported_type", f"{name}: {unsupported} values are not stored")
        raise Rejected("wrong_type", f"{name}: unknown datatype {datatype}")
    present = metric.WhichOneof("value")
    if present != field:
        got = present or "no value"
        raise Rejected("wrong_type", f"{name}: datatype {datatype} travels in {field}, got {got}")
    return getattr(metric, field)


def scalar(raw: object, datatype: int, name: str) -> Value:
    """A scalar field's raw value as what is stored, by datatype."""
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None:
        value = int(raw)  # type: ignore[call-overload]
        value &= (1 << bits) - 1
        if value >> (bits - 1):
            value -= 1 << bits
        return float(value)
    if datatype in _TEXT_TYPES:
        return str(raw)
    if datatype == BOOLEAN:
        return 1.0 if raw else 0.0
    if datatype in _UNSUPPORTED:
        raise Rejected(
            "unsupported_type", f"{name}: {_UNSUPPORTED[datatype]} values are not stored"
        )
    if datatype in _UNSIGNED or datatype == DATETIME:
        return float(raw)  # type: ignore[arg-type]
    if datatype in (FLOAT, DOUBLE):
        value = float(raw)  # type: ignore[arg-type]
        if value - value != 0.0:
            raise Rejected("non_finite_value", f"{name}: value {value!r} is not finite")
        return value
    raise Rejected("wrong_type", f"{name}: datatype {datatype} is not a scalar")


def _finite(value: float) -> float:
    if value - value == 0.0:  # false for inf and nan
        return value
    raise Rejected("non_finite_value", f"value {value!r} is not finite")


def _signed(bits: int) -> Callable[[int], float]:
    mask, sign, wrap = (1 << bits) - 1, 1 << (bits - 1), 1 << bits

    def convert(raw: int) -> float:
        value = raw & mask
        return float(value - wrap if value & sign else value)

    return convert


# The hot path of DATA (bridge.sparkplug.host): numeric datatype -> (the field
# its value travels in, raw field value -> stored float). The same results as
# ``scalar``, without its lookups; any other datatype takes ``values``.
FAST_SCALARS: dict[int, tuple[str, Callable[[Any], float]]] = {
    **{t: (_FIELD[t], _signed(bits)) for t, bits in _SIGNED_BITS.items()},
    **{t: (_FIELD[t], float) for t in (*_UNSIGNED, DATETIME, BOOLEAN)},
    FLOAT: ("float_value", _finite),
    DOUBLE: ("double_value", _finite),
}


_DATASET_FIELDS = {
    **{t: _FIELD[t] for t in (INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64)},
    FLOAT: "float_value",
    DOUBLE: "double_value",
    BOOLEAN: "boolean_value",
    STRING: "string_value",
    TEXT: "string_value",
    UUID: "string_value",
    DATETIME: "long_value",
}


def _dataset(dataset: object, name: str) -> list[tuple[str, Value]]:
    """One value per cell, ``<row>.<column>``; a column of a type that is no
    number, boolean or string rejects the whole DataSet."""
    assert isinstance(dataset, pb.Payload.DataSet)
    columns, types = list(dataset.columns), list(dataset.types)
    if len(columns) != len(types):
        raise Rejected(
            "bad_dataset", f"{name}: {len(columns)} column names but {len(types)} column types"
        )
    for column, datatype in zip(columns, types, strict=True):
        if datatype not in _DATASET_FIELDS:
            raise Rejected(
                "not_numeric",
                f"{name}: DataSet column {show(column)} has type {datatype}, not a number, "
                "boolean or string",
            )
    out: list[tuple[str, Value]] = []
    for row_index, row in enumerate(dataset.rows):
        if len(row.elements) != len(columns):
            raise Rejected(
                "bad_dataset",
                f"{name}: row {row_index} has {len(row.elements)} values for {len(columns)} columns",
            )
        for column, datatype, element in zip(columns, types, row.elements, strict=True):
            field = _DATASET_FIELDS[datatype]
            if element.WhichOneof("value") != field:
                raise Rejected(
                    "wrong_type",
                    f"{name}: row {row_index} column {show(column)} is not in {field}",
                )
            out.append((f"{row_index}.{column}", scalar(getattr(element, field), datatype, name)))
    return out


def _template(template: object, name: str, depth: int) -> list[tuple[str, Value]]:
    """One value per member; nested Templates joined with ``.``. A member of
    a type this bridge cannot store rejects the whole Template."""
    assert isinstance(template, pb.Payload.Template)
    if depth >= MAX_NESTING:
        raise Rejected("too_deep", f"{name}: Templates nested deeper than {MAX_NESTING}")
    out: list[tuple[str, Value]] = []
    for member in template.metrics:
        if member.is_null:
            continue
        member_name = member.name
        for suffix, value in _values(member, member.datatype, f"{name}/{member_name}", depth + 1):
            out.append((f"{member_name}.{suffix}" if suffix else member_name, value))
    if not out and not template.is_definition:
        raise Rejected("not_numeric", f"{name}: Template has no value that can be stored")
    return out


# --- names ------------------------------------------------------------------

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.:-]")


def metric_key(name: str) -> str:
    """A Sparkplug metric name as this bridge's metric name: ``/`` becomes
    ``.``, any other character outside [A-Za-z0-9_.:-] ``_``, and a name not
    starting with a letter or ``_`` gets a ``_`` in front.
    ``Inputs/Tank Level`` is ``Inputs.Tank_Level``."""
    key = _NOT_IN_NAME.sub("_", name.replace("/", "."))
    if not key or not (key[0].isalpha() or key[0] == "_") or not key[0].isascii():
        key = "_" + key
    return key
