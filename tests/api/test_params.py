"""The API's query parameters, checked without HTTP: what each accepts, and
the 400 problem, naming the parameter, for what it refuses."""

from __future__ import annotations

import pytest

from bridge.api.params import (
    HOUR_US,
    check_id,
    check_metrics,
    page_size,
    parse_time,
    time_range,
)
from bridge.api.problems import ApiProblem

S = 1_000_000
NOW = 1_795_773_600 * S  # 2026-11-27T10:00:00Z


@pytest.mark.parametrize("text", ["999999999999999999999999999999", "-1e300", "1e300"])
def test_a_time_beyond_years_1_to_9999_is_a_400(text: str) -> None:
    """(found by schemathesis: end=999999999999999999999999999999 was a 500)"""
    with pytest.raises(ApiProblem) as caught:
        parse_time(text, "end")
    assert caught.value.status == 400
    assert "out of range" in caught.value.detail


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-11-27T10:00:00Z", NOW),
        ("2026-11-27T12:00:00.5+02:00", NOW + S // 2),
        ("2026-11-27T10:00:00", NOW),  # no offset: UTC
        ("1795773600", NOW),  # seconds
        ("1795773600000", NOW),  # milliseconds
        ("1795773600000000", NOW),  # microseconds
        ("1795773600000000999", NOW),  # nanoseconds, floored
        ("1795773600.25", NOW + S // 4),
    ],
)
def test_a_time_in_any_accepted_form(text: str, want: int) -> None:
    assert parse_time(text, "start") == want


# "¹" and "٣" pass str.isdigit() and float() (found by schemathesis: "¹" was a 500)
@pytest.mark.parametrize(
    "text", ["yesterday", "2026-13-01T00:00:00Z", "nan", "inf", "1e999", "¹", "-¹", "٣"]
)
def test_what_is_not_a_time_is_a_400_naming_the_parameter(text: str) -> None:
    with pytest.raises(ApiProblem) as caught:
        parse_time(text, "end")
    assert caught.value.status == 400
    assert caught.value.detail.startswith(f"end={text!r} is not a time")


def test_the_range_defaults_to_the_hour_before_now() -> None:
    assert time_range(None, None, now_us=NOW, max_days=7) == (NOW - HOUR_US, NOW)
    assert time_range(None, "1795773600", now_us=0, max_days=7) == (NOW - HOUR_US, NOW)
    assert time_range("1795770000", None, now_us=NOW, max_days=7) == (NOW - HOUR_US, NOW)


@pytest.mark.parametrize(
    ("start", "end", "detail"),
    [
        ("1795773600", "1795773600", "end must be after start"),
        ("1795773601", "1795773600", "end must be after start"),
        ("1795000000", "1795773600", "the range is longer than the 7 days allowed"),
    ],
)
def test_an_empty_or_too_long_range_is_refused(start: str, end: str, detail: str) -> None:
    with pytest.raises(ApiProblem, match=detail):
        time_range(start, end, now_us=NOW, max_days=7)


def test_exactly_the_longest_range_is_allowed() -> None:
    start, end = time_range("1795168800", "1795773600", now_us=NOW, max_days=7)
    assert end - start == 7 * 86_400 * S


def test_ids_and_metrics_follow_the_codecs_rules() -> None:
    assert check_id("pump-1:a.b_c", "device_id", 128) == "pump-1:a.b_c"
    with pytest.raises(ApiProblem, match="site"):
        check_id("a|b", "site", 128)
    with pytest.raises(ApiProblem, match="after"):
        check_id("x" * 129, "after", 128)
    check_metrics(None, 64)
    check_metrics(["flow_rate", "pip"], 64)
    with pytest.raises(ApiProblem, match="metric 'bad name'"):
        check_metrics(["flow_rate", "bad name"], 64)


def test_the_page_size_defaults_and_is_bounded() -> None:
    assert page_size(None, 100, 1000) == 100
    assert page_size(1000, 100, 1000) == 1000
    for bad in (0, 1001):
        with pytest.raises(ApiProblem, match="limit must be between 1 and 1000"):
            page_size(bad, 100, 1000)
