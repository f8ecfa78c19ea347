"""Sparkplug topics, and the ids a node or device is stored under.

    spBv1.0/<group_id>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH|NCMD|DCMD>/<edge_node_id>[/<device_id>]
    spBv1.0/STATE/<host_id>

``parse`` returns a ``SparkplugTopic`` or raises ``CodecError`` (``bad_topic``).
Identity (configurable, ``Identity``): the group is the site; the device is
the edge node, or ``<edge_node>:<device>`` for a device (``/`` cannot be in
a device id: it names API paths and cache keys). With ``edge_node`` identity a
device's metrics are stored under its node, named ``<device>.<metric>``.
Characters outside a device id's [A-Za-z0-9_.:-] become ``_``.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from core.rules import CodecError, show

NAMESPACE = "spBv1.0"
NODE_TYPES = frozenset({"NBIRTH", "NDATA", "NDEATH", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDATA", "DDEATH", "DCMD"})
FILTERS = (f"{NAMESPACE}/+/+/+", f"{NAMESPACE}/+/+/+/+")  # N and D messages, not STATE

Identity = Literal["edge_node_device", "edge_node"]


class SparkplugTopic(NamedTuple):
    group: str
    kind: str  # NBIRTH, NDATA, ...
    node: str
    device: str | None  # None for node messages


def parse(topic: str) -> SparkplugTopic:
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        raise CodecError(
            "bad_topic", f"{show(topic)} is not spBv1.0/<group>/<type>/<node>[/<device>]"
        )
    _, group, kind, node, *rest = parts
    device = rest[0] if rest else None
    expected = DEVICE_TYPES if device is not None else NODE_TYPES
    if kind not in expected or not group or not node or device == "":
        raise CodecError("bad_topic", f"{show(topic)}: no Sparkplug message type {show(kind)} here")
    return SparkplugTopic(group, kind, node, device)


_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_.:-]")


def safe_id(text: str, max_len: int) -> str:
    return _NOT_IN_ID.sub("_", text)[:max_len]


def device_id(identity: Identity, node: str, device: str | None, max_len: int) -> tuple[str, str]:
    """(device_id, metric prefix) a node's or device's metrics are stored
    under."""
    if device is None:
        return safe_id(node, max_len), ""
    if identity == "edge_node":
        return safe_id(node, max_len), f"{device}/"
    return safe_id(f"{node}:{device}", max_len), ""


def command_topic(group: str, node: str) -> str:
    return f"{NAMESPACE}/{group}/NCMD/{node}"


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"
