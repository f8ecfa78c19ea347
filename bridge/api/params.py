"""Query parameters, checked: times, time ranges, ids and metric names, page
sizes and cursors.

Litestar checks what the route declarations can say (lengths, patterns,
bounds); these check the rest with the rules every codec uses (core.rules),
so the API accepts exactly the ids and metrics that ingest does. Every
failure is a 400 ApiProblem whose detail names the parameter and says what
would do.
"""

from __future__ import annotations

from bridge.api.problems import bad_request
from core.rules import (
    Rejected,
    epoch_float_us,
    epoch_int_us,
    id_problem,
    is_metric_name,
    metric_name_problem,
    rfc3339_us,
)

HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000


# PostgreSQL's timestamptz reaches further, but a time past these is a mistake.
MIN_US, MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999  # years 1 and 9999


def parse_time(text: str, name: str) -> int:
    """RFC 3339, or epoch seconds / ms / µs / ns told apart by magnitude."""
    us = _parse_time(text, name)
    if not MIN_US <= us <= MAX_US:
        raise bad_request(f"{name}={text[:40]!r} is out of range: give a time in years 1 to 9999")
    return us


def _parse_time(text: str, name: str) -> int:
    try:
        # Times are ASCII; str.isdigit(), int() and float() also take "¹" or "٣".
        if not text.isascii():
            raise Rejected("bad_time", "not ASCII")
        if text.lstrip("-").isdigit() and len(text) <= 20:
            return epoch_int_us(int(text))
        try:
            number = float(text)
        except ValueError:
            return rfc3339_us(text)
        if number - number != 0.0:
            raise bad_request(f"{name}={text[:40]!r} is not a time")
        return epoch_float_us(number)
    except Rejected:
        raise bad_request(
            f"{name}={text[:40]!r} is not a time: give RFC 3339 (2026-11-27T10:00:00Z) or "
            "epoch seconds, milliseconds, microseconds or nanoseconds"
        ) from None


def time_range(
    start: str | None, end: str | None, *, now_us: int, max_days: int
) -> tuple[int, int]:
    """[start_us, end_us) from the parameters: end defaults to now, start to
    an hour before end; the range must be non-empty and at most ``max_days``."""
    end_us = parse_time(end, "end") if end else now_us
    start_us = parse_time(start, "start") if start else end_us - HOUR_US
    if end_us <= start_us:
        raise bad_request("end must be after start")
    if end_us - start_us > max_days * DAY_US:
        raise bad_request(f"the range is longer than the {max_days} days allowed")
    return start_us, end_us


def check_id(value: str, name: str, max_len: int) -> str:
    """A device, site or type id (or a cursor, which is a device id)."""
    problem = id_problem(value, name, max_len)
    if problem is not None:
        raise bad_request(problem)
    return value


def check_metrics(metrics: list[str] | None, max_len: int) -> None:
    for metric in metrics or ():
        if not is_metric_name(metric, max_len):
            raise bad_request(f"metric {metric[:40]!r}: {metric_name_problem(metric, max_len)}")


def page_size(limit: int | None, default: int, largest: int) -> int:
    size = default if limit is None else limit
    if not 1 <= size <= largest:
        raise bad_request(f"limit must be between 1 and {largest}")
    return size
