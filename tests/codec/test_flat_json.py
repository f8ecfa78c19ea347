"""flat_json: each accepted shape, each reason a message or a point is refused."""

from __future__ import annotations

import json

import pytest

from core.codec import CODECS, CodecError, DecodeContext, Decoded
from core.limits import Limits
from core.types import Point

RECEIVED = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
DEVICE = "plc-7"
codec = CODECS["flat_json"]


def decode(payload: object, metric: str | None = None, limits: Limits | None = None) -> Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return codec.decode(raw, DecodeContext(DEVICE, metric, RECEIVED, limits or Limits()))


def refused(payload: object, metric: str | None = None, limits: Limits | None = None) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(payload, metric, limits)
    return info.value


def reasons(decoded: Decoded) -> list[str]:
    return [reject.reason for reject in decoded.rejects]


# --- accepted shapes ----------------------------------------------------------


def test_one_point() -> None:
    decoded = decode({"metric": "flow_rate", "value": 1234.5, "ts": 1_795_773_599_123})
    assert decoded == Decoded([Point(RECEIVED - 877_000, DEVICE, "flow_rate", 1234.5)], [])


def test_a_list_of_points() -> None:
    payload = [
        {"metric": "a", "value": 1, "ts": "2026-11-27T09:59:00Z"},
        {"metric": "b", "value": False},
    ]
    assert decode(payload).points == [
        Point(RECEIVED - 60_000_000, DEVICE, "a", 1.0),
        Point(RECEIVED, DEVICE, "b", 0.0),
    ]


def test_an_envelope_of_points() -> None:
    payload = {
        "device_id": DEVICE,
        "site": "north",
        "points": [{"metric": "a", "value": 1.5}, {"metric": "b", "value": 2, "ts": 1_795_773_590}],
    }
    assert decode(payload).points == [
        Point(RECEIVED, DEVICE, "a", 1.5),
        Point(RECEIVED - 10_000_000, DEVICE, "b", 2.0),
    ]


@pytest.mark.parametrize("key", ["ts", "time", "timestamp"])
def test_time_key_aliases(key: str) -> None:
    decoded = decode({"metric": "m", "value": 1, key: "2026-11-27T09:59:59.5Z"})
    assert decoded.points == [Point(RECEIVED - 500_000, DEVICE, "m", 1.0)]


def test_ts_wins_over_its_aliases_and_null_means_absent() -> None:
    both = {"metric": "m", "value": 1, "ts": 1_795_773_599, "time": 1_795_773_598}
    assert decode(both).points[0].time_us == RECEIVED - 1_000_000
    null = {"metric": "m", "value": 1, "ts": None}
    assert decode(null).points[0].time_us == RECEIVED


@pytest.mark.parametrize(
    ("ts", "expected_us"),
    [
        (1_795_773_590, RECEIVED - 10_000_000),
        (1_795_773_590.25, RECEIVED - 9_750_000),
        (1_795_773_590_000, RECEIVED - 10_000_000),
        (1_795_773_590_000_000, RECEIVED - 10_000_000),
        (1_795_773_590_000_000_000, RECEIVED - 10_000_000),
        ("2026-11-27T09:59:50.000000001Z", RECEIVED - 10_000_000),
        ("2026-11-27T04:29:50-05:30", RECEIVED - 10_000_000),
    ],
)
def test_timestamps_in_every_unit_and_form(ts: object, expected_us: int) -> None:
    assert decode({"metric": "m", "value": 1, "ts": ts}).points == [
        Point(expected_us, DEVICE, "m", 1.0)
    ]


def test_the_topic_metric_fills_in_a_missing_metric() -> None:
    decoded = decode([{"value": 1}, {"metric": "other", "value": 2}], metric="temp")
    assert decoded.points == [
        Point(RECEIVED, DEVICE, "temp", 1.0),
        Point(RECEIVED, DEVICE, "other", 2.0),  # a point's own metric is used
    ]


def test_extra_keys_are_ignored() -> None:
    decoded = decode({"metric": "m", "value": 1, "unit": "bar", "quality": "good"})
    assert decoded.points == [Point(RECEIVED, DEVICE, "m", 1.0)]


# --- the device named in the payload -------------------------------------------


def test_an_envelope_naming_another_device_is_refused() -> None:
    error = refused({"device_id": "plc-8", "points": [{"metric": "m", "value": 1}]})
    assert error.reason == "device_mismatch"


@pytest.mark.parametrize("claimed", ["plc-8", None, 7])
def test_a_point_naming_another_device_refuses_the_message(claimed: object) -> None:
    payload = [{"metric": "m", "value": 1}, {"metric": "m", "value": 2, "device_id": claimed}]
    assert refused(payload).reason == "device_mismatch"


def test_points_naming_their_own_device_are_fine() -> None:
    decoded = decode({"points": [{"metric": "m", "value": 1, "device_id": DEVICE}]})
    assert decoded.points == [Point(RECEIVED, DEVICE, "m", 1.0)]


# --- shapes that are refused ----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"points": {"metric": "m", "value": 1}},
        {"points": None},
        {"points": "m=1"},
        [{"metric": "m", "value": 1}, 5],
        [[{"metric": "m", "value": 1}]],
        {"points": [None]},
        "m=1",
        1.5,
        None,
    ],
)
def test_bad_shapes(payload: object) -> None:
    assert refused(payload).reason == "bad_shape"


@pytest.mark.parametrize("payload", [[], {"points": []}, {"device_id": DEVICE, "points": []}])
def test_no_points(payload: object) -> None:
    assert refused(payload).reason == "no_points"


@pytest.mark.parametrize("payload", [b"", b"[", b'{"metric": "m", "value": 1,}', b"\xc3\x28"])
def test_malformed_json(payload: bytes) -> None:
    assert refused(payload).reason == "malformed_json"


def test_payload_too_large() -> None:
    payload = json.dumps([{"metric": "m", "value": i} for i in range(10)]).encode()
    assert refused(payload, limits=Limits(max_payload_bytes=len(payload) - 1)).reason == (
        "payload_too_large"
    )
    assert len(decode(payload, limits=Limits(max_payload_bytes=len(payload))).points) == 10


def test_too_many_points() -> None:
    limits = Limits(max_points_per_message=3)
    points = [{"metric": "m", "value": i} for i in range(4)]
    assert refused(points, limits=limits).reason == "too_many_points"
    assert refused({"points": points}, limits=limits).reason == "too_many_points"
    assert len(decode(points[:3], limits=limits).points) == 3


# --- points that are rejected, the rest kept -------------------------------------


def test_each_point_reason_keeps_the_good_points() -> None:
    payload = (
        b'[{"metric": "good", "value": 1},'
        b' {"metric": "bad name", "value": 1},'
        b' {"metric": 5, "value": 1},'
        b' {"value": 1},'
        b' {"metric": "nov"},'
        b' {"metric": "s", "value": "1"},'
        b' {"metric": "n", "value": null},'
        b' {"metric": "inf", "value": -1e999},'
        b' {"metric": "t1", "value": 1, "ts": "soon"},'
        b' {"metric": "t2", "value": 1, "ts": 1795773900.000001},'
        b' {"metric": "t3", "value": 1, "ts": 1787997599},'
        b" {}]"
    )
    decoded = decode(payload)
    assert decoded.points == [Point(RECEIVED, DEVICE, "good", 1.0)]
    assert reasons(decoded) == [
        "bad_metric_name",
        "bad_metric_name",
        "bad_metric_name",
        "bad_value",
        "bad_value",
        "bad_value",
        "non_finite_value",
        "bad_timestamp",
        "time_in_future",
        "time_too_old",
        "bad_metric_name",
    ]


def test_a_missing_metric_says_so() -> None:
    decoded = decode({"value": 1})
    assert decoded.points == []
    assert decoded.rejects[0].reason == "bad_metric_name"
    assert "no metric" in decoded.rejects[0].detail


def test_a_bad_topic_metric_is_rejected_like_any_other() -> None:
    decoded = decode({"value": 1}, metric="x" * 65)
    assert reasons(decoded) == ["bad_metric_name"]
