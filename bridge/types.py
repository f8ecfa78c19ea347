"""The data that flows through the bridge, and the stage contracts.

    Message (bytes from MQTT) -> Codec -> Points + Rejects -> Batch -> sinks -> acks

A Point is a plain tuple so that it goes to COPY and to Redis without
conversion. Times are integer microseconds since the Unix epoch (UTC), which
is PostgreSQL's own precision; floats and datetimes never travel.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class Point(NamedTuple):
    time_us: int  # microseconds since 1970-01-01T00:00:00Z
    device_id: str
    metric: str
    value: float  # finite; booleans become 0.0 / 1.0


class Reject(NamedTuple):
    """Why (part of) a message can never be stored. ``reason`` is a short
    snake_case label, also the metric label; ``detail`` says what was wrong."""

    reason: str
    detail: str


class Outcome(enum.Enum):
    """What became of a message, decided once its batch is settled."""

    DELIVERED = "delivered"  # every point committed (rejects, if any, dead-lettered)
    REJECTED = "rejected"  # nothing storable; dead-lettered
    RETRY = "retry"  # not settled on this connection; the broker redelivers it
