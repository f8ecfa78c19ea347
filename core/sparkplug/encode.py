"""Sparkplug B payloads built with the generated classes: the host's
Rebirth command and the simulator's births and data.

``SimMetric`` is one metric of a simulated node: name, alias, datatype and a
value of the matching Python type (int for the integer types, signed as
declared; float; bool; str). Integers are put on the wire as the
specification says: Int8/16/32 as two's complement in the 32-bit
``int_value``, Int64 in the 64-bit ``long_value``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from core.sparkplug import payload as sp
from core.sparkplug import sparkplug_b_pb2 as pb

REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"


class SimMetric(NamedTuple):
    name: str
    alias: int
    datatype: int
    value: int | float | bool | str


def rebirth_command(now_ms: int) -> bytes:
    """NCMD ``Node Control/Rebirth`` = true."""
    msg = pb.Payload(timestamp=now_ms)
    msg.metrics.add(name=REBIRTH, datatype=sp.BOOLEAN, boolean_value=True)
    return msg.SerializeToString()


def _put(metric: pb.Payload.Metric, datatype: int, value: int | float | bool | str) -> None:
    if datatype in (sp.INT8, sp.INT16, sp.INT32, sp.UINT8, sp.UINT16, sp.UINT32):
        metric.int_value = int(value) & 0xFFFFFFFF
    elif datatype in (sp.INT64, sp.UINT64, sp.DATETIME):
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype == sp.FLOAT:
        metric.float_value = float(value)
    elif datatype == sp.DOUBLE:
        metric.double_value = float(value)
    elif datatype == sp.BOOLEAN:
        metric.boolean_value = bool(value)
    else:
        metric.string_value = str(value)


def birth(now_ms: int, seq: int, metrics: Iterable[SimMetric], bd_seq: int | None = None) -> bytes:
    """An NBIRTH (with ``bd_seq``) or DBIRTH: every metric with its name, alias,
    datatype and current value."""
    msg = pb.Payload(timestamp=now_ms, seq=seq)
    if bd_seq is not None:
        msg.metrics.add(name=BD_SEQ, datatype=sp.INT64, long_value=bd_seq)
    for m in metrics:
        metric = msg.metrics.add(name=m.name, alias=m.alias, datatype=m.datatype, timestamp=now_ms)
        _put(metric, m.datatype, m.value)
    return msg.SerializeToString()


def data(now_ms: int, seq: int, metrics: Iterable[SimMetric]) -> bytes:
    """An NDATA or DDATA by alias only."""
    msg = pb.Payload(timestamp=now_ms, seq=seq)
    for m in metrics:
        _put(msg.metrics.add(alias=m.alias, timestamp=now_ms), m.datatype, m.value)
    return msg.SerializeToString()


def death(bd_seq: int, now_ms: int | None = None) -> bytes:
    """An NDEATH (the node's will): the bdSeq of the birth it ends."""
    msg = pb.Payload() if now_ms is None else pb.Payload(timestamp=now_ms)
    msg.metrics.add(name=BD_SEQ, datatype=sp.INT64, long_value=bd_seq)
    return msg.SerializeToString()
