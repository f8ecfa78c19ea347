"""The mapping codec's time formats: how a value found at the time path
becomes microseconds since the epoch.

    auto       the rules every codec shares (core.rules.point_time_us): a
               number is epoch s/ms/µs/ns by magnitude, a string RFC 3339
    rfc3339    an RFC 3339 string; without an offset, in the time zone
    epoch_s, epoch_ms, epoch_us, epoch_ns
               a number (integer or fraction) in that unit
    a pattern  anything with a % is a strptime pattern (``%d.%m.%Y %H:%M:%S``);
               without %z, in the time zone

Every result then passes the same window as other codecs (time_in_future,
time_too_old); a value of the wrong kind or shape is ``bad_timestamp``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.rules import (
    Rejected,
    TimeWindow,
    check_window,
    point_time_us,
    rfc3339_us,
    show,
)

FORMATS = ("auto", "rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")
_MAX_TIME_STRING = 64
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:\d\d)$", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_UNIT_US = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}

TimeReader = Callable[[object, TimeWindow], int]


def zone(name: str) -> tzinfo:
    """The time zone of an IANA name (``Europe/Berlin``) or ``UTC``; ValueError if unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None


def time_reader(fmt: str, tz: tzinfo) -> TimeReader:
    """A function from a found value and the window to µs; raises Rejected. ValueError
    for a format that is neither a known name nor a pattern."""
    if fmt == "auto" and tz is UTC:
        return point_time_us
    if fmt in ("auto", "rfc3339"):
        allow_numbers = fmt == "auto"
        return lambda raw, window: _rfc3339(raw, window, tz, allow_numbers)
    if fmt in _UNIT_US or fmt == "epoch_ns":
        return lambda raw, window: check_window(_epoch(raw, fmt), raw, window)
    if "%" in fmt:
        try:
            datetime.now(UTC).strftime(fmt)
        except ValueError as exc:
            raise ValueError(f"time pattern {fmt!r}: {exc}") from None
        return lambda raw, window: check_window(_pattern(raw, fmt, tz), raw, window)
    raise ValueError(
        f"unknown time format {fmt!r}: one of {', '.join(FORMATS)}, or a strptime pattern with %"
    )


def _rfc3339(raw: object, window: TimeWindow, tz: tzinfo, allow_numbers: bool) -> int:
    if type(raw) is not str:
        if allow_numbers and raw is not None:
            return point_time_us(raw, window)
        raise Rejected("bad_timestamp", f"timestamp {show(raw)} is not an RFC 3339 string")
    time_us = rfc3339_us(raw)  # as UTC when it has no offset
    if tz is not UTC and _OFFSET.search(raw) is None:
        local = datetime(1970, 1, 1) + (time_us * _MICROSECOND)
        offset = tz.utcoffset(local) or timedelta(0)
        time_us -= offset // _MICROSECOND
    return check_window(time_us, raw, window)


def _epoch(raw: object, fmt: str) -> int:
    if type(raw) is int:
        if fmt == "epoch_ns":
            return raw // 1_000
        return raw * _UNIT_US[fmt]
    if type(raw) is float and math.isfinite(raw):
        if fmt == "epoch_ns":
            return int(raw) // 1_000
        whole = int(raw)  # exact; the fraction is rounded to the µs
        return whole * _UNIT_US[fmt] + round((raw - whole) * _UNIT_US[fmt])
    raise Rejected("bad_timestamp", f"timestamp {show(raw)} is not a number ({fmt})")


def _pattern(raw: object, fmt: str, tz: tzinfo) -> int:
    if type(raw) is not str or len(raw) > _MAX_TIME_STRING:
        raise Rejected("bad_timestamp", f"timestamp {show(raw)} is not a string of {fmt!r}")
    try:
        moment = datetime.strptime(raw, fmt)
    except ValueError:
        raise Rejected("bad_timestamp", f"timestamp {show(raw)} does not match {fmt!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return (moment - _EPOCH) // _MICROSECOND
