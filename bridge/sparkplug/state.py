"""What the Sparkplug host knows of each edge node and device, and what it
hands on to be kept (bridge.sparkplug.store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from bridge.router import Routed
from core.sparkplug import payload as sp
from core.sparkplug import topic as spt
from core.types import Reject

Alias = tuple[str, int]  # (metric key, datatype)


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
