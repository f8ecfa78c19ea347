"""What the Sparkplug host knows of each edge node and device, and what it
hands on to be kept (bridge.sparkplug.store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from bridge.router import Routed
from core.sparkplug import payload as sp
from core.sparkplug import topic as spt
from core.sparkplug.encode import BD_SEQ
from core.types import Reject

# (metric key, datatype, whether the key is a valid metric name), from a birth
Alias = tuple[str, int, bool]


class BirthMetric(NamedTuple):
    name: str  # as the node sent it
    alias: int | None
    datatype: int


class Birth(NamedTuple):
    """A birth to keep (bridge.sparkplug.store): what decodes later DATA."""

    group: str
    node: str
    device: str  # "" for the node's own birth
    bd_seq: int | None
    metrics: list[BirthMetric]


class Status(NamedTuple):
    """A device's registry status after a BIRTH (online) or DEATH (offline)."""

    device_id: str
    site_id: str
    online: bool


@dataclass(slots=True)
class Entity:
    """What a birth says of a node or one device."""

    prefix: str  # put before each metric name (edge_node identity, device metrics)
    by_alias: dict[int, Alias] = field(default_factory=dict)
    by_name: dict[str, Alias] = field(default_factory=dict)
    online: bool = True


@dataclass(slots=True)
class Node:
    bd_seq: int | None = None
    seq: int | None = None  # the last seq seen; None: the next one sets it
    own: Entity | None = None  # None until its NBIRTH
    devices: dict[str, Entity] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)  # seqs skipped, not yet arrived
    gap_timer: asyncio.TimerHandle | None = None
    last_rebirth: float = float("-inf")


@dataclass(slots=True)
class Message:
    """One message being routed, and what it has produced so far."""

    where: spt.SparkplugTopic
    node: Node
    payload: sp.Payload
    out: Routed
    rejects: list[Reject]
    received_us: int


def birth_metrics(msg: sp.Payload, rejects: list[Reject]) -> tuple[list[BirthMetric], int | None]:
    """A birth's metrics (name, alias, datatype) and its bdSeq; a metric
    without a name or with an alias beyond bigint is rejected."""
    metrics: list[BirthMetric] = []
    bd_seq = None
    for m in msg.metrics:
        if not m.HasField("name"):
            rejects.append(Reject("bad_birth", "a birth metric has no name"))
            continue
        if m.name == BD_SEQ:
            bd_seq = _int(m)
            continue
        alias = m.alias if m.HasField("alias") else None
        if alias is not None and alias > sp.MAX_ALIAS:
            rejects.append(Reject("bad_alias", f"{m.name!r}: alias {alias} is beyond 2^63-1"))
            alias = None
        metrics.append(BirthMetric(m.name, alias, m.datatype))
    return metrics, bd_seq


def bd_seq_of(msg: sp.Payload) -> int | None:
    for m in msg.metrics:
        if m.name == BD_SEQ:
            return _int(m)
    return None


def _int(m: sp.Metric) -> int | None:
    kind = m.WhichOneof("value")
    if kind == "long_value":
        return int(m.long_value)
    if kind == "int_value":
        return int(m.int_value)
    return None
