"""A point's time: read from epoch numbers (the unit told by magnitude) or
RFC 3339 strings, in µs since the epoch, and checked against the window the
limits allow around the receive time (TimeWindow). Each failure is Rejected
(one point): bad_timestamp, time_in_future, time_too_old."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from core.rules.contract import DecodeContext, Rejected, show

_MAX_TIME_STRING = 64  # longer timestamp strings are rejected unread


def _span(us: int) -> str:
    """A duration for a detail: ``3 s``, ``12 days``, ``centuries``."""
    seconds = abs(us) // 1_000_000
    if seconds < 86_400:
        return f"{seconds} s"
    if seconds < 86_400 * 36_500:
        return f"{seconds // 86_400} days"
    return "centuries"


class TimeWindow(NamedTuple):
    """The times a point may carry, from the receive time and the limits."""

    received_us: int
    earliest_us: int
    latest_us: int

    @classmethod
    def of(cls, ctx: DecodeContext) -> TimeWindow:
        received, limits = ctx.received_us, ctx.limits
        return tuple.__new__(  # once per message; see contract.new_point
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
