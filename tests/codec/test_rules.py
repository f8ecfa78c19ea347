"""The per-point rules every codec shares: metric names, values, times, and
how payloads are parsed."""

from __future__ import annotations

import json
import math

import pytest

from core import rules as v
from core.codec import CodecError, DecodeContext
from core.limits import Limits
from core.rules import Rejected, TimeWindow, names

RECEIVED = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
LIMITS = Limits()
WINDOW = TimeWindow.of(DecodeContext("pump-0001", None, RECEIVED, LIMITS))


def rejected(func, *args) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejected) as info:
        func(*args)
    return info.value.reject


# --- metric names -------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["flow_rate", "_x", "a", "Temp.C", "ns:metric-1", "A" * 64, "x1.2_3:4-5"]
)
def test_valid_metric_names_pass(name: str) -> None:
    assert v.metric_name(name, 64) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must match"),
        ("1abc", "must match"),
        ("-x", "must match"),
        (".x", "must match"),
        ("flow rate", "must match"),
        ("temp/c", "must match"),
        ("temp\n", "must match"),
        ("tëmp", "must match"),
        ("x\x00", "must match"),
        ("A" * 65, "longer than 64"),
        (None, "must be a string"),
        (5, "must be a string"),
        (["x"], "must be a string"),
    ],
)
def test_invalid_metric_names_are_rejected(name: object, why: str) -> None:
    reason, detail = rejected(v.metric_name, name, 64)
    assert reason == "bad_metric_name"
    assert why in detail


def test_metric_length_limit_is_checked_even_when_the_name_is_cached() -> None:
    assert v.metric_name("cached_name_of_20ch", 64) == "cached_name_of_20ch"
    reason, _ = rejected(v.metric_name, "cached_name_of_20ch", 10)
    assert reason == "bad_metric_name"


def test_metric_name_cache_stays_bounded_and_correct() -> None:
    for i in range(names._KNOWN_NAMES_MAX * 2 + 10):
        assert v.metric_name(f"m{i}", 64) == f"m{i}"
        assert len(names._known_names) <= names._KNOWN_NAMES_MAX
    # invalid names are never cached
    rejected(v.metric_name, "bad name", 64)
    assert "bad name" not in names._known_names
    assert v.metric_name("m0", 64) == "m0"


def test_long_metric_names_are_not_echoed_whole() -> None:
    _, detail = rejected(v.metric_name, "x" * 100_000, 64)
    assert len(detail) < 200


# --- values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1.5, 1.5),
        (-0.0, -0.0),
        (0, 0.0),
        (-7, -7.0),
        (2**63, float(2**63)),
        (True, 1.0),
        (False, 0.0),
        (1.7976931348623157e308, 1.7976931348623157e308),
    ],
)
def test_numbers_and_booleans_become_floats(raw: object, expected: float) -> None:
    value = v.point_value(raw, "m")
    assert type(value) is float
    assert value == expected


@pytest.mark.parametrize("raw", ["1.5", "", None, {}, {"v": 1}, [], [1]])
def test_non_numbers_are_bad_values(raw: object) -> None:
    reason, detail = rejected(v.point_value, raw, "flow")
    assert reason == "bad_value"
    assert detail.startswith("flow: ")


@pytest.mark.parametrize("raw", [math.inf, -math.inf, math.nan, 10**400, -(10**400)])
def test_non_finite_values_are_rejected(raw: object) -> None:
    reason, detail = rejected(v.point_value, raw, "m")
    assert reason == "non_finite_value"
    assert len(detail) < 200


def test_string_values_are_bounded_in_utf8_bytes() -> None:
    limits = Limits(max_text_bytes=8)
    assert v.text_value("", "m", limits) == ""
    assert v.text_value("éééé", "m", limits) == "éééé"  # 8 bytes
    with pytest.raises(Rejected) as exc:
        v.text_value("ééééé", "m", limits)  # 5 characters, 10 bytes
    assert exc.value.reject.reason == "text_too_long"
    assert "10 bytes" in exc.value.reject.detail
    for bad in ("a\x00b", "\ud800"):  # NUL; a lone surrogate
        with pytest.raises(Rejected) as exc:
            v.text_value(bad, "m", limits)
        assert exc.value.reject.reason == "bad_text"


def test_a_long_string_value_is_not_echoed_whole() -> None:
    _, detail = rejected(v.point_value, "y" * 50_000, "m")
    assert len(detail) < 200


# --- epoch times --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected_us"),
    [
        (1_795_773_600, 1_795_773_600_000_000),  # s
        (1_795_773_600.25, 1_795_773_600_250_000),  # s with a fraction
        (1_795_773_600_123, 1_795_773_600_123_000),  # ms
        (1_795_773_600_123.5, 1_795_773_600_123_500),  # ms with a fraction
        (1_795_773_600_123_456, 1_795_773_600_123_456),  # µs
        (1_795_773_600_123_456.0, 1_795_773_600_123_456),  # µs as a float
        (1_795_773_600_123_456_789, 1_795_773_600_123_456),  # ns, cut to µs
        (1.795_773_600_123_456e18, 1_795_773_600_123_456),  # ns as a float
        (1_795_773_600.123, 1_795_773_600_123_000),  # not exact in binary: rounded
    ],
)
def test_epoch_numbers_take_their_unit_from_their_magnitude(raw: float, expected_us: int) -> None:
    assert v.point_time_us(raw, WINDOW) == expected_us


@pytest.mark.parametrize(
    ("raw", "expected_us"),
    [
        (0, 0),
        (99_999_999_999, 99_999_999_999_000_000),  # last value read as seconds
        (100_000_000_000, 100_000_000_000_000),  # first read as milliseconds
        (99_999_999_999_999, 99_999_999_999_999_000),
        (100_000_000_000_000, 100_000_000_000_000),  # first read as microseconds
        (99_999_999_999_999_999, 99_999_999_999_999_999),
        (100_000_000_000_000_000, 100_000_000_000_000),  # first read as nanoseconds
        (-1_000, -1_000_000_000),  # before 1970, in seconds
        (-100_000_000_000, -100_000_000_000_000),  # magnitude decides the unit
    ],
)
def test_epoch_unit_boundaries(raw: int, expected_us: int) -> None:
    assert v.epoch_int_us(raw) == expected_us
    if abs(raw) < 2**53:
        assert v.epoch_float_us(float(raw)) == expected_us


def test_absent_time_is_the_receive_time() -> None:
    assert v.point_time_us(None, WINDOW) == RECEIVED


# --- RFC 3339 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("2026-11-27T10:00:00Z", RECEIVED),
        ("2026-11-27T10:00:00.123Z", RECEIVED + 123_000),
        ("2026-11-27T10:00:00.1Z", RECEIVED + 100_000),
        ("2026-11-27T10:00:00.123456Z", RECEIVED + 123_456),
        ("2026-11-27T10:00:00.123456789Z", RECEIVED + 123_456),  # ns cut to µs
        ("2026-11-27t10:00:00z", RECEIVED),
        ("2026-11-27 10:00:00Z", RECEIVED),
        ("2026-11-27T12:00:00+02:00", RECEIVED),
        ("2026-11-27T04:30:00.5-05:30", RECEIVED + 500_000),
        ("2026-11-27T10:00:00+00:00", RECEIVED),
        ("2026-11-27T10:00:00-00:00", RECEIVED),
        ("2026-11-27T10:00:00", RECEIVED),  # naive: UTC
        ("2026-11-27T09:58:00.000001", RECEIVED - 120_000_000 + 1),
    ],
)
def test_rfc3339_forms(text: str, expected_us: int) -> None:
    assert v.rfc3339_us(text) == expected_us
    assert v.point_time_us(text, WINDOW) == expected_us


def test_rfc3339_far_dates() -> None:
    assert v.rfc3339_us("1970-01-01T00:00:00Z") == 0
    assert v.rfc3339_us("1969-12-31T23:59:59.999999Z") == -1
    assert v.rfc3339_us("0001-01-01T00:00:00+01:00") == -62_135_600_400_000_000
    assert v.rfc3339_us("9999-12-31T23:59:59-23:59") == 253_402_387_139_000_000


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-27",  # a date, not a date-time
        "2026-11-27T10:00Z",  # no seconds
        "2026-11-27T10Z",
        "20261127T100000Z",  # ISO 8601 basic format, not RFC 3339
        "2026-W48-5T10:00:00Z",
        "2026-11-27T10:00:00,5Z",
        "2026-11-27T10:00:00.Z",
        "2026-11-27T10:00:00.1234567890Z",  # more than ns
        "2026-11-27T10:00:00+0200",
        "2026-11-27T10:00:00+02",
        "2026-11-27T10:00:00 Z",
        " 2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00Zjunk",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-11-31T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T10:60:00Z",
        "2026-11-27T10:00:60Z",  # leap seconds are not representable
        "2026-11-27T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff16-11-27T10:00:00Z",  # fullwidth digits
        "2026-11-27T10:00:00.123Z" + " " * 100,
        "now",
        "1795773600",  # a number in a string is not a timestamp
    ],
)
def test_bad_timestamp_strings(text: str) -> None:
    reason, detail = rejected(v.point_time_us, text, WINDOW)
    assert reason == "bad_timestamp"
    assert len(detail) < 200


@pytest.mark.parametrize("raw", [True, False, {}, [], [1_795_773_600], math.nan, math.inf])
def test_timestamps_of_other_types_are_bad(raw: object) -> None:
    reason, _ = rejected(v.point_time_us, raw, WINDOW)
    assert reason == "bad_timestamp"


# --- the time window ----------------------------------------------------------


def test_time_window_edges_are_inclusive() -> None:
    skew_us = 300 * 1_000_000
    age_us = 90 * 86_400 * 1_000_000
    assert v.point_time_us(RECEIVED + skew_us, WINDOW) == RECEIVED + skew_us
    assert rejected(v.point_time_us, RECEIVED + skew_us + 1, WINDOW)[0] == "time_in_future"
    assert v.point_time_us(RECEIVED - age_us, WINDOW) == RECEIVED - age_us
    assert rejected(v.point_time_us, RECEIVED - age_us - 1, WINDOW)[0] == "time_too_old"


def test_time_window_follows_the_limits() -> None:
    limits = Limits(max_future_skew_s=0.5, max_age_days=1)
    window = TimeWindow.of(DecodeContext("d", None, RECEIVED, limits))
    assert window == (RECEIVED, RECEIVED - 86_400_000_000, RECEIVED + 500_000)
    assert rejected(v.point_time_us, "2026-11-27T10:00:00.500001Z", window)[0] == "time_in_future"
    assert rejected(v.point_time_us, "2026-11-26T09:59:59Z", window)[0] == "time_too_old"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (0, "time_too_old"),
        (-(10**300), "time_too_old"),
        (10**300, "time_in_future"),
        (1e300, "time_in_future"),
        ("9999-12-31T23:59:59Z", "time_in_future"),
        ("1970-01-01T00:00:00Z", "time_too_old"),
    ],
)
def test_far_times_are_rejected_with_a_short_detail(raw: object, reason: str) -> None:
    got, detail = rejected(v.point_time_us, raw, WINDOW)
    assert got == reason
    assert len(detail) < 200


# --- parsing ------------------------------------------------------------------


def test_parse_json_reads_utf8_json() -> None:
    assert v.parse_json(b'{"a": [1, 2.5, "\xc3\xa9"]}', LIMITS) == {"a": [1, 2.5, "é"]}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"\xff\xfe{}",
        '{"a": 1}'.encode("utf-16"),
        b'{"a": "\xff"}',
        b"[" * 100_000,
        b"[" * 5_000 + b"]" * 5_000,  # deeper than either decoder goes
        b"1" * 5_000,  # an integer too long for Python to read
        b"{}{}",
    ],
)
def test_malformed_payloads_are_one_codec_error(payload: bytes) -> None:
    with pytest.raises(CodecError) as info:
        v.parse_json(payload, Limits(max_payload_bytes=1_000_000))
    assert info.value.reason == "malformed_json"
    assert len(info.value.detail) <= 200


def test_malformed_detail_never_echoes_the_payload() -> None:
    payload = b'{"key": "' + b"A" * 10_000 + b'"'
    with pytest.raises(CodecError) as info:
        v.parse_json(payload, LIMITS)
    assert "AAAAAAAAAA" not in info.value.detail


def test_numbers_beyond_a_double_cost_a_point_not_the_message() -> None:
    # The fast decoder refuses the whole document; the stdlib fallback reads them.
    doc = v.parse_json(b'{"a": 1e999, "b": -1e999, "c": NaN, "d": 2}', LIMITS)
    assert isinstance(doc, dict)
    assert doc["a"] == math.inf
    assert doc["b"] == -math.inf
    assert math.isnan(doc["c"])
    assert doc["d"] == 2


def test_payload_size_is_checked_before_parsing() -> None:
    limits = Limits(max_payload_bytes=64)
    assert v.parse_json(b"[" + b"1," * 30 + b"11]", limits) is not None  # 64 bytes
    with pytest.raises(CodecError) as info:
        v.parse_json(b"{" * 65, limits)  # also malformed: size is reported
    assert info.value.reason == "payload_too_large"
    assert "65 bytes" in info.value.detail


def test_codec_error_keeps_reason_and_detail() -> None:
    error = CodecError("bad_shape", "what was wrong")
    assert (error.reason, error.detail) == ("bad_shape", "what was wrong")
    assert "bad_shape" in str(error)


def test_show_cuts_what_it_echoes() -> None:
    assert v.show("abc") == "'abc'"
    assert len(v.show("x" * 1_000)) <= 83
    assert len(v.show(b"x" * 1_000)) <= 83
    assert v.show({"a": 1}) == "<object of 1>"
    assert v.show([1, 2]) == "<array of 2>"
    assert v.show(10**1000) == "<3322-bit integer>"
    assert json.dumps(v.show("\x00\ud800"))  # escaped, so it can be stored and logged
