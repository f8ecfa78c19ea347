"""The data that flows through the bridge and the edge agent.

    Message (bytes from MQTT) -> Codec -> Points + Rejects -> Batch -> sinks -> acks
                                          (Rejects become DeadLetters)

A Point is a plain tuple so that it goes to COPY, to Redis and to the edge
agent's spool without conversion. Times are integer microseconds since the
Unix epoch (UTC), which is PostgreSQL's own precision; floats and datetimes
never travel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Point(NamedTuple):
    time_us: int  # microseconds since 1970-01-01T00:00:00Z
    device_id: str
    metric: str
    value: float  # finite; booleans become 0.0 / 1.0


class TextPoint(NamedTuple):
    """A string value (Sparkplug String/Text, a line-protocol string field):
    stored in telemetry_text with the same keys and idempotency as Point."""

    time_us: int
    device_id: str
    metric: str
    text: str


Sample = tuple[int, str, float]  # (time_us, metric, value) of one device, for encoders


class Reject(NamedTuple):
    """Why (part of) a message can never be stored. ``reason`` is a short
    snake_case label, also the metric label; ``detail`` says what was wrong."""

    reason: str
    detail: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """One row of rejected_messages: why a message, or some of its points,
    failed. Made only by the bridge's router, which applies the row's bounds."""

    received_us: int
    topic: str
    reason: str
    detail: str
    payload: bytes  # already cut to the dead-letter bound
    payload_size: int
