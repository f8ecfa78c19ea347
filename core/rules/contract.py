"""What a codec is given (DecodeContext) and returns (Decoded), and how it
says no: CodecError for the whole message, Rejected for one point (caught by
the codec and recorded as a Reject). ``show`` and ``kind`` render input for
a detail, never the whole of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import BridgeError
from core.limits import Limits
from core.types import Point, Reject, TextPoint

_DETAIL_INPUT_CHARS = 80  # at most this much of the input is echoed in a detail


@dataclass(frozen=True, slots=True)
class DecodeContext:
    device_id: str  # from the topic, already validated by core.topics
    metric: str | None  # from the topic, if its template has {metric}
    received_us: int  # receive time, microseconds since the Unix epoch
    limits: Limits


@dataclass(slots=True)
class Decoded:
    points: list[Point]
    rejects: list[Reject]  # points dropped from an otherwise good message
    texts: list[TextPoint] = field(default_factory=list)  # string values, if any
    # Devices the payload names (a line-protocol device tag), each with the
    # site it names or None, for the registry; the topic's device and
    # {site_id} are the router's.
    sites: dict[str, str | None] = field(default_factory=dict)


class CodecError(BridgeError):
    """The whole payload is unusable: dead-letter it with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Rejected(BridgeError):
    """One point cannot be stored. Raised by the point rules, caught by the codec."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reject = Reject(reason, detail)


# Point(...) runs NamedTuple's __new__, written in Python; tuple.__new__ builds
# the same Point in C, in about half the time. Call it as
# new_point(Point, (time_us, device_id, metric, value)), fields in Point's order.
new_point = tuple.__new__


def show(value: object) -> str:
    """A short, safe rendering of input for a detail: never the whole of it."""
    if isinstance(value, dict | list):
        return f"<{'object' if isinstance(value, dict) else 'array'} of {len(value)}>"
    if type(value) is int and value.bit_length() > 64:
        return f"<{value.bit_length()}-bit integer>"
    text = repr(value[: _DETAIL_INPUT_CHARS + 1] if isinstance(value, str | bytes) else value)
    return text if len(text) <= _DETAIL_INPUT_CHARS else text[:_DETAIL_INPUT_CHARS] + "..."


def kind(value: object) -> str:
    """The JSON name of a value's type, for details."""
    if value is None:
        return "null"
    return _KINDS.get(type(value), type(value).__name__)


_KINDS = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
}
