"""The rules every codec shares, written once: what a codec is given and
returns, how a payload is parsed, and what makes one point storable.

Whole-message failures raise ``CodecError``; a point that cannot be stored
raises ``Rejected`` from the rules below, which the codec catches, records as
a ``Reject`` and goes on with the next point. Checks run in a fixed order for
each point: metric name, value, time; the first failure names the reason.

    reason              whole message (CodecError)   one point (Reject)
    payload_too_large   x
    malformed_json      x
    bad_shape           x
    device_mismatch     x
    too_many_points     x
    no_points           x
    no_metric           x
    missing_path        x (device)                   x (metric, time)
    path_error          x (device)                   x
    bad_device          x
    too_deep                                         x
    too_many_leaves                                  x
    bad_metric_name                                  x
    bad_value                                        x
    non_finite_value                                 x
    text_too_long                                    x (a string value)
    bad_text                                         x (a string value)
    bad_timestamp                                    x
    time_in_future                                   x
    time_too_old                                     x

These types live here rather than in ``core.codec`` so that every codec
module can import them without an import cycle; ``core.codec`` re-exports
them and is where the rest of the bridge imports them from.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeGuard

import msgspec

from core.errors import BridgeError
from core.limits import Limits
from core.types import Point, Reject, TextPoint

JsonLoads = Callable[[bytes], object]

# msgspec's untyped decoder, chosen by bench/bench_decoders.py (figures in
# bench/results/decoders.json): about 1.5x the standard library on the whole
# decode path, a few percent ahead of orjson. Any callable that takes UTF-8
# bytes and raises ValueError or RecursionError on bad input can replace it.
FAST_LOADS: JsonLoads = msgspec.json.Decoder().decode

_DETAIL_INPUT_CHARS = 80  # at most this much of the input is echoed in a detail
_MAX_TIME_STRING = 64  # longer timestamp strings are rejected unread


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


def _span(us: int) -> str:
    """A duration for a detail: ``3 s``, ``12 days``, ``centuries``."""
    seconds = abs(us) // 1_000_000
    if seconds < 86_400:
        return f"{seconds} s"
    if seconds < 86_400 * 36_500:
        return f"{seconds // 86_400} days"
    return "centuries"


# --- the payload ------------------------------------------------------------


def check_size(payload: bytes, limits: Limits) -> None:
    if len(payload) > limits.max_payload_bytes:
        raise CodecError(
            "payload_too_large",
            f"{len(payload)} bytes, more than the {limits.max_payload_bytes} allowed",
        )


def parse_json(payload: bytes, limits: Limits, loads: JsonLoads = FAST_LOADS) -> object:
    """The payload as JSON values, or CodecError.

    The fast decoder is strict: it refuses the whole document when a number is
    beyond the range of a double (``1e999``) and it refuses ``NaN``. When it
    fails, the standard library decides instead (slower, but it reads those as
    infinities and NaN), so that such a number costs one point, not the whole
    message. Both only ever see UTF-8.
    """
    check_size(payload, limits)
    try:
        return loads(payload)
    except (ValueError, RecursionError):
        pass
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CodecError("malformed_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise CodecError("malformed_json", str(exc)[:200]) from None


def finish(
    points: list[Point], rejects: list[Reject], texts: list[TextPoint] | None = None
) -> Decoded:
    if not points and not rejects and not texts:
        raise CodecError("no_points", "the message holds no readings")
    return Decoded(points, rejects, texts or [])


def check_point_count(count: int, limits: Limits) -> None:
    if count > limits.max_points_per_message:
        raise CodecError(
            "too_many_points",
            f"{count} points, more than the {limits.max_points_per_message} allowed",
        )


def check_device(claimed: object, ctx: DecodeContext) -> None:
    """A device_id in the payload must be the topic's: the broker's ACL vouches
    for the topic, not for what the payload says."""
    if claimed != ctx.device_id:
        raise CodecError(
            "device_mismatch",
            f"payload names device {show(claimed)}, the topic {ctx.device_id!r}",
        )


# --- device and site ids ------------------------------------------------------

ID = re.compile(r"[A-Za-z0-9_.:-]+")


def id_problem(value: object, name: str, max_len: int) -> str | None:
    """What is wrong with a device or site id, or None: the topics' rules."""
    if type(value) is not str:
        return f"{name} must be a string, got {kind(value)}"
    if not 1 <= len(value) <= max_len or ID.fullmatch(value) is None:
        return (
            f"{name} {show(value)} must be 1-{max_len} characters of "
            "letters, digits, '_', '.', ':' and '-'"
        )
    return None


# --- metric names -------------------------------------------------------------

METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")

# Names already known to match METRIC_NAME. A device sends the same few names
# in every message, so the regex runs once per name, not once per point. The
# cache holds only a fact about the string (the length limit is checked on
# every call), so sharing it between codecs and contexts is safe; it is
# emptied when full, which bounds it whatever names arrive.
_known_names: dict[str, None] = {}
_KNOWN_NAMES_MAX = 4096


def is_metric_name(name: object, max_len: int) -> TypeGuard[str]:
    if type(name) is not str or len(name) > max_len:
        return False
    if name in _known_names:
        return True
    if METRIC_NAME.fullmatch(name) is None:
        return False
    if len(_known_names) >= _KNOWN_NAMES_MAX:
        _known_names.clear()
    _known_names[name] = None
    return True


def metric_name_problem(name: object, max_len: int) -> str:
    """What is wrong with a name that ``is_metric_name`` refused."""
    if type(name) is not str:
        return f"metric name must be a string, got {show(name)}"
    if len(name) > max_len:
        return f"metric name {show(name)} is longer than {max_len} characters"
    return f"metric name {show(name)} must match [A-Za-z_][A-Za-z0-9_.:-]*"


def config_metric_name(value: str, max_len: int = 64) -> str:
    """A metric name written in a config file; ValueError (what pydantic
    reports as a validation error) saying the rule when it breaks it."""
    if len(value) > max_len or METRIC_NAME.fullmatch(value) is None:
        raise ValueError(
            f"metric name {value!r} must match [A-Za-z_][A-Za-z0-9_.:-]* ({max_len} at most)"
        )
    return value


def metric_name(name: object, max_len: int) -> str:
    """``name`` when it is a valid metric name; raises Rejected otherwise."""
    if type(name) is str and name in _known_names and len(name) <= max_len:
        return name  # the common case, without a call
    if is_metric_name(name, max_len):
        return name
    raise Rejected("bad_metric_name", metric_name_problem(name, max_len))


# --- values -------------------------------------------------------------------


def point_value(raw: object, metric: str) -> float:
    """A JSON number or boolean as a finite float; raises Rejected otherwise.
    ``metric`` only names the point in the detail."""
    if type(raw) is float:
        if raw - raw == 0.0:  # false for inf and nan; cheaper than math.isfinite
            return raw
        raise Rejected("non_finite_value", f"{metric}: value {raw!r} is not finite")
    if type(raw) is int:
        try:
            return float(raw)
        except OverflowError:
            raise Rejected(
                "non_finite_value", f"{metric}: value {show(raw)} is beyond a double"
            ) from None
    if type(raw) is bool:
        return 1.0 if raw else 0.0
    got = f"{kind(raw)} {show(raw)}" if type(raw) is str else kind(raw)
    raise Rejected("bad_value", f"{metric}: value must be a number or boolean, got {got}")


def text_value(raw: str, metric: str, limits: Limits) -> str:
    """A string value as stored in telemetry_text; raises Rejected when it is
    longer than ``limits.max_text_bytes`` in UTF-8 or holds a NUL (which
    PostgreSQL text cannot hold). ``metric`` only names the point in the detail."""
    if "\x00" in raw:
        raise Rejected("bad_text", f"{metric}: string holds a NUL character")
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        raise Rejected("bad_text", f"{metric}: string is not valid Unicode") from None
    if size > limits.max_text_bytes:
        raise Rejected(
            "text_too_long",
            f"{metric}: string of {size} bytes is longer than the {limits.max_text_bytes} allowed",
        )
    return raw


# --- times --------------------------------------------------------------------


class TimeWindow(NamedTuple):
    """The times a point may carry, from the receive time and the limits."""

    received_us: int
    earliest_us: int
    latest_us: int

    @classmethod
    def of(cls, ctx: DecodeContext) -> TimeWindow:
        received, limits = ctx.received_us, ctx.limits
        return tuple.__new__(  # once per message; see new_point
            cls,
            (
                received,
                received - limits.max_age_days * 86_400_000_000,
                received + int(limits.max_future_skew_s * 1_000_000),
            ),
        )


def point_time_us(raw: object, window: TimeWindow) -> int:
    """A point's time in µs since the epoch; raises Rejected when unusable.

    Absent (None) means the receive time. A number is epoch time whose unit
    follows from its magnitude: below 1e11 seconds (which may have a fraction),
    below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds. A
    string is RFC 3339, UTC when it has no offset.
    """
    if raw is None:
        return window.received_us
    if type(raw) is int:
        time_us = epoch_int_us(raw)
    elif type(raw) is float:
        if not math.isfinite(raw):
            raise Rejected("bad_timestamp", f"timestamp {raw!r} is not finite")
        time_us = epoch_float_us(raw)
    elif type(raw) is str:
        time_us = rfc3339_us(raw)
    else:
        raise Rejected("bad_timestamp", f"timestamp must be a number or string, got {show(raw)}")
    return check_window(time_us, raw, window)


def check_window(time_us: int, raw: object, window: TimeWindow) -> int:
    """``time_us`` when it lies within the window; raises Rejected otherwise.
    ``raw`` is the input it was read from, for the detail."""
    if time_us > window.latest_us:
        raise Rejected(
            "time_in_future",
            f"timestamp {show(raw)} is {_span(time_us - window.received_us)} ahead of "
            "the receive time",
        )
    if time_us < window.earliest_us:
        raise Rejected(
            "time_too_old",
            f"timestamp {show(raw)} is {_span(window.received_us - time_us)} before "
            "the receive time",
        )
    return time_us


def epoch_int_us(raw: int) -> int:
    """Epoch seconds, ms, µs or ns, told apart by magnitude, in µs (ns floored)."""
    magnitude = abs(raw)
    if magnitude < 100_000_000_000:
        return raw * 1_000_000
    if magnitude < 100_000_000_000_000:
        return raw * 1_000
    if magnitude < 100_000_000_000_000_000:
        return raw
    return raw // 1_000


def epoch_float_us(raw: float) -> int:
    """As epoch_int_us, but the fraction is rounded to the nearest µs: a float
    such as 1795773600.123 is really 1795773600.12299990654."""
    whole = int(raw)  # exact
    fraction = raw - whole  # exact too, and below 1 in magnitude
    magnitude = abs(raw)
    if magnitude < 1e11:
        return whole * 1_000_000 + round(fraction * 1e6)
    if magnitude < 1e14:
        return whole * 1_000 + round(fraction * 1e3)
    if magnitude < 1e17:
        return whole + round(fraction)
    return whole // 1_000


# RFC 3339's shape; datetime.fromisoformat then checks the ranges (month 13,
# February 30, hour 24 and second 60 are refused) and does the arithmetic.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)?",
    re.ASCII | re.IGNORECASE,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def rfc3339_us(text: str) -> int:
    """An RFC 3339 date-time (``2026-11-27T10:00:00.123Z``, ``…+02:00``, or
    without an offset, taken as UTC) in µs since the epoch; digits past the
    microsecond are cut."""
    if len(text) > _MAX_TIME_STRING or _RFC3339.fullmatch(text) is None:
        raise Rejected("bad_timestamp", f"timestamp {show(text)} is not RFC 3339")
    try:
        moment = datetime.fromisoformat(text.upper())  # it takes "T" and "Z", not "t" and "z"
    except ValueError:
        raise Rejected("bad_timestamp", f"timestamp {show(text)} is no such time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND
