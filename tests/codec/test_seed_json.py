"""seed_json: each accepted shape, each reason a message or a point is refused."""

from __future__ import annotations

import json

import pytest

from core.codec import CODECS, CodecError, DecodeContext, Decoded
from core.limits import Limits
from core.types import Point, Reject

RECEIVED = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
DEVICE = "pump-0001"
codec = CODECS["seed_json"]


def decode(payload: object, limits: Limits | None = None) -> Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return codec.decode(raw, DecodeContext(DEVICE, None, RECEIVED, limits or Limits()))


def refused(payload: object, limits: Limits | None = None) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(payload, limits)
    return info.value


def reasons(decoded: Decoded) -> list[str]:
    return [reject.reason for reject in decoded.rejects]


# --- accepted shapes ----------------------------------------------------------


def test_the_seed_message() -> None:
    payload = (
        b'{"device_id":"pump-0001","timestamp":"2026-11-27T10:00:00.123Z",'
        b'"data":{"flow_rate":1234.5,"pip":2750.25,"temperature":70.2}}'
    )
    assert decode(payload) == Decoded(
        points=[
            Point(RECEIVED + 123_000, DEVICE, "flow_rate", 1234.5),
            Point(RECEIVED + 123_000, DEVICE, "pip", 2750.25),
            Point(RECEIVED + 123_000, DEVICE, "temperature", 70.2),
        ],
        rejects=[],
    )


def test_a_batch_of_readings_with_epoch_ms() -> None:
    payload = [
        {"device_id": DEVICE, "timestamp": 1_795_773_590_000, "data": {"a": 1, "b": 2.5}},
        {"device_id": DEVICE, "timestamp": 1_795_773_595_500, "data": {"a": 3}},
    ]
    assert decode(payload).points == [
        Point(RECEIVED - 10_000_000, DEVICE, "a", 1.0),
        Point(RECEIVED - 10_000_000, DEVICE, "b", 2.5),
        Point(RECEIVED - 4_500_000, DEVICE, "a", 3.0),
    ]


@pytest.mark.parametrize(
    ("timestamp", "expected_us"),
    [
        (1_795_773_590, RECEIVED - 10_000_000),
        (1_795_773_590.5, RECEIVED - 9_500_000),
        (1_795_773_590_000, RECEIVED - 10_000_000),
        (1_795_773_590_000_001, RECEIVED - 9_999_999),
        (1_795_773_590_000_001_999, RECEIVED - 9_999_999),
        ("2026-11-27T09:59:50Z", RECEIVED - 10_000_000),
        ("2026-11-27T11:59:50+02:00", RECEIVED - 10_000_000),
        ("2026-11-27T09:59:50", RECEIVED - 10_000_000),
    ],
)
def test_timestamps_in_every_unit_and_form(timestamp: object, expected_us: int) -> None:
    decoded = decode({"timestamp": timestamp, "data": {"m": 1}})
    assert decoded.points == [Point(expected_us, DEVICE, "m", 1.0)]


def test_device_id_and_timestamp_are_optional() -> None:
    assert decode({"data": {"m": 1}}).points == [Point(RECEIVED, DEVICE, "m", 1.0)]
    assert decode({"timestamp": None, "data": {"m": 1}}).points == [
        Point(RECEIVED, DEVICE, "m", 1.0)
    ]


def test_extra_keys_are_ignored() -> None:
    payload = {"data": {"m": 1}, "fw": "1.2", "seq": 7, "meta": {"x": [1]}}
    assert decode(payload).points == [Point(RECEIVED, DEVICE, "m", 1.0)]


def test_booleans_and_integers_become_floats() -> None:
    points = decode({"data": {"running": True, "alarm": False, "count": 3}}).points
    assert [(p.metric, p.value, type(p.value)) for p in points] == [
        ("running", 1.0, float),
        ("alarm", 0.0, float),
        ("count", 3.0, float),
    ]


# --- the device named in the payload -------------------------------------------


@pytest.mark.parametrize("claimed", ["pump-0002", "PUMP-0001", "", None, 1, ["pump-0001"]])
def test_a_payload_naming_another_device_is_refused(claimed: object) -> None:
    error = refused({"device_id": claimed, "data": {"m": 1}})
    assert error.reason == "device_mismatch"


def test_one_spoofed_reading_refuses_the_whole_batch() -> None:
    payload = [
        {"device_id": DEVICE, "data": {"m": 1}},
        {"device_id": "pump-0002", "data": {"m": 2}},
    ]
    assert refused(payload).reason == "device_mismatch"


def test_mismatch_detail_is_short_even_for_a_huge_claim() -> None:
    error = refused({"device_id": "x" * 100_000, "data": {"m": 1}})
    assert len(error.detail) < 250


# --- shapes that are refused ----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"device_id": DEVICE},
        {"data": None},
        {"data": [1, 2]},
        {"data": "m=1"},
        {"data": 5},
        {"Data": {"m": 1}},
        [{"data": {"m": 1}}, 5],
        [{"data": {"m": 1}}, {"timestamp": 1}],
        [[{"data": {"m": 1}}]],
        "hello",
        42,
        None,
        True,
    ],
)
def test_bad_shapes(payload: object) -> None:
    assert refused(payload).reason == "bad_shape"


@pytest.mark.parametrize("payload", [{"data": {}}, [], [{"data": {}}, {"data": {}}]])
def test_no_readings_is_no_points(payload: object) -> None:
    assert refused(payload).reason == "no_points"


@pytest.mark.parametrize("payload", [b"", b"{", b'{"data": {"m": 1}', b"\xff", b"data: m=1"])
def test_malformed_json(payload: bytes) -> None:
    assert refused(payload).reason == "malformed_json"


def test_payload_too_large() -> None:
    limits = Limits(max_payload_bytes=100)
    payload = json.dumps({"data": {f"m{i}": i for i in range(20)}}).encode()
    assert len(payload) > 100
    assert refused(payload, limits).reason == "payload_too_large"


def test_too_many_points_counts_every_reading() -> None:
    limits = Limits(max_points_per_message=4)
    four = [{"data": {"a": 1, "b": 2}}, {"data": {"a": 3, "b": 4}}]
    assert len(decode(four, limits).points) == 4
    five = [*four, {"data": {"c": 5}}]
    error = refused(five, limits)
    assert error.reason == "too_many_points"
    assert "5 points" in error.detail


# --- points that are rejected, the rest kept -------------------------------------


def test_each_point_reason_keeps_the_good_points() -> None:
    payload = (
        b'{"data": {"good": 1.5, "bad name": 1, "1st": 2, "s": "1.5", "n": null, '
        b'"o": {"v": 1}, "l": [1], "inf": 1e999, "nan": NaN, "big": 1' + b"0" * 400 + b"}}"
    )
    decoded = decode(payload)
    assert decoded.points == [Point(RECEIVED, DEVICE, "good", 1.5)]
    assert reasons(decoded) == [
        "bad_metric_name",
        "bad_metric_name",
        "bad_value",
        "bad_value",
        "bad_value",
        "bad_value",
        "non_finite_value",
        "non_finite_value",
        "non_finite_value",
    ]


def test_metric_name_length_follows_the_limit() -> None:
    limits = Limits(max_metric_len=5)
    decoded = decode({"data": {"abcde": 1, "abcdef": 2}}, limits)
    assert decoded.points == [Point(RECEIVED, DEVICE, "abcde", 1.0)]
    assert reasons(decoded) == ["bad_metric_name"]


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("yesterday", "bad_timestamp"),
        ("2026-02-30T00:00:00Z", "bad_timestamp"),
        (True, "bad_timestamp"),
        ({"s": 1}, "bad_timestamp"),
        ("2026-11-27T10:05:00.000001Z", "time_in_future"),
        (1_795_773_900_001, "time_in_future"),
        ("2026-08-29T09:59:59Z", "time_too_old"),
        (0, "time_too_old"),
    ],
)
def test_a_bad_timestamp_rejects_every_point_of_its_reading(timestamp: object, reason: str) -> None:
    payload = [
        {"timestamp": timestamp, "data": {"a": 1, "b": 2}},
        {"timestamp": "2026-11-27T10:05:00Z", "data": {"a": 3}},  # the latest allowed
    ]
    decoded = decode(payload)
    assert decoded.points == [Point(RECEIVED + 300_000_000, DEVICE, "a", 3.0)]
    assert reasons(decoded) == [reason, reason]


def test_the_point_reason_comes_first_then_the_time_reason() -> None:
    decoded = decode({"timestamp": "bad", "data": {"bad name": 1, "v": "x", "ok": 1}})
    assert reasons(decoded) == ["bad_metric_name", "bad_value", "bad_timestamp"]
    assert decoded.points == []


def test_a_message_of_only_rejects_is_not_an_error() -> None:
    decoded = decode({"data": {"v": None}})
    assert decoded.points == []
    assert decoded.rejects == [
        Reject("bad_value", "v: value must be a number or boolean, got null")
    ]


def test_every_detail_is_short() -> None:
    long = "x" * 10_000
    payload = {"timestamp": long, "data": {long: 1, "v": long, "w": {long: long}}}
    for reject in decode(payload).rejects:
        assert len(reject.detail) < 200, reject
