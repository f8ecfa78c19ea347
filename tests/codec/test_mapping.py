"""The mapping codec's options and its behaviour on bad input: each fault
costs only the readings it touches, with a reason, and the configuration
refuses what could never work, naming the route and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError
from core.codec import CodecError, DecodeContext, Decoded, build_codec
from core.limits import Limits
from core.types import Point, Reject

NOW = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
DEVICE = "dev-1"


def decode(
    payload: bytes, limits: Limits | None = None, metric: str | None = None, **options: Any
) -> Decoded:
    codec = build_codec("mapping", options)
    return codec.decode(payload, DecodeContext(DEVICE, metric, NOW, limits or Limits()))


def reasons(decoded: Decoded) -> list[str]:
    return [r.reason for r in decoded.rejects]


# --- what it reads ------------------------------------------------------------


def test_explicit_metrics_with_scale_and_offset() -> None:
    got = decode(
        b'{"s": {"t": 215, "h": 40.5}, "other": 1}',
        metrics={"temp_c": "s.t", "hum": "s.h"},
        scale={"temp_c": 0.1},
        offset={"temp_c": -1.5, "hum": 1},
    )
    assert got == Decoded([Point(NOW, DEVICE, "temp_c", 20.0), Point(NOW, DEVICE, "hum", 41.5)], [])


def test_leaves_with_joiner_include_exclude_and_lists() -> None:
    got = decode(
        b'{"a": {"b": 1, "c": [2, {"d": 3}]}, "x": 4, "skip": 5, "s": "text", "n": null}',
        joiner="_",
        include=["a_*", "x", "skip"],
        exclude=["skip"],
    )
    assert got.points == [
        Point(NOW, DEVICE, "a_b", 1.0),
        Point(NOW, DEVICE, "a_c_0", 2.0),
        Point(NOW, DEVICE, "a_c_1_d", 3.0),
        Point(NOW, DEVICE, "x", 4.0),
    ]
    assert got.rejects == []


def test_root_and_topic_metric_prefix() -> None:
    got = decode(b'{"data": {"v": 1}}', metric="pump", root="data", topic_metric_prefix=True)
    assert got.points == [Point(NOW, DEVICE, "pump.v", 1.0)]


@pytest.mark.parametrize(
    ("fmt", "raw", "zone", "expected"),
    [
        ("epoch_s", b"1795773590", "UTC", NOW - 10_000_000),
        ("epoch_s", b"1795773590.25", "UTC", NOW - 9_750_000),
        ("epoch_ms", b"1795773590250", "UTC", NOW - 9_750_000),
        ("epoch_us", b"1795773590250001", "UTC", NOW - 9_749_999),
        ("epoch_ns", b"1795773590250001999", "UTC", NOW - 9_749_999),
        ("epoch_ms", b"59", "UTC", None),  # 1970: too old
        ("rfc3339", b'"2026-11-27T11:00:00"', "Europe/Berlin", NOW),
        ("rfc3339", b'"2026-11-27T10:00:00Z"', "Europe/Berlin", NOW),
        ("rfc3339", b"1795773600", "UTC", None),  # a number is not RFC 3339
        ("%d.%m.%Y %H:%M:%S", b'"27.11.2026 11:00:00"', "Europe/Berlin", NOW),
        ("%d.%m.%Y %H:%M:%S", b'"27.11.2026 10:00:00"', "UTC", NOW),
        ("%d.%m.%Y %H:%M:%S", b'"2026-11-27 10:00:00"', "UTC", None),
        ("auto", b'"2026-11-27T10:00:00.5Z"', "UTC", NOW + 500_000),
        ("auto", b"1795773600", "Asia/Tokyo", NOW),
    ],
)
def test_time_formats(fmt: str, raw: bytes, zone: str, expected: int | None) -> None:
    got = decode(b'{"t": ' + raw + b', "v": 1}', time_path="t", time_format=fmt, time_zone=zone)
    if expected is None:
        assert got.points == []
        assert reasons(got)[0] in ("bad_timestamp", "time_too_old")
    else:
        assert got == Decoded([Point(expected, DEVICE, "v", 1.0)], [])


def test_device_constant_and_path() -> None:
    assert decode(b'{"v": 1}', device="site-meter").points[0].device_id == "site-meter"
    assert decode(b'{"id": "s-9", "v": 1}', device_path="id").points == [
        Point(NOW, "s-9", "v", 1.0)
    ]


def test_arrays_of_readings_each_with_time_and_device() -> None:
    payload = (
        b'{"readings": [{"dev": "a", "t": 1795773590, "temp": 20.5},'
        b' {"dev": "b", "temp": 21, "hum": 40}]}'
    )
    got = decode(payload, items={"path": "readings", "time": "t", "device": "dev"})
    assert got == Decoded(
        [
            Point(NOW - 10_000_000, "a", "temp", 20.5),
            Point(NOW, "b", "temp", 21.0),  # no time of its own: the message's (receive time)
            Point(NOW, "b", "hum", 40.0),
        ],
        [],
    )


def test_arrays_of_named_values() -> None:
    payload = b'[{"n": "temp", "v": 20.5, "t": 1795773590}, {"n": "hum", "v": "41"}]'
    got = decode(
        payload, items={"path": "@", "name": "n", "value": "v", "time": "t"}, numeric_strings=True
    )
    assert got.points == [
        Point(NOW - 10_000_000, DEVICE, "temp", 20.5),
        Point(NOW, DEVICE, "hum", 41.0),
    ]


# --- bad input: a reason, and the good readings kept ---------------------------


def test_missing_path_costs_only_its_metric() -> None:
    got = decode(b'{"a": 1}', metrics={"a": "a", "b": "nothing.here"})
    assert got.points == [Point(NOW, DEVICE, "a", 1.0)]
    assert reasons(got) == ["missing_path"]
    assert "'nothing.here'" in got.rejects[0].detail


def test_non_number_costs_only_its_metric() -> None:
    got = decode(b'{"a": 1, "b": "warm", "c": {"x": 1}}', metrics={"a": "a", "b": "b", "c": "c"})
    assert got.points == [Point(NOW, DEVICE, "a", 1.0)]
    assert reasons(got) == ["bad_value", "bad_value"]


def test_unparseable_time_costs_its_reading_only() -> None:
    payload = b'{"r": [{"t": "yesterday", "v": 1}, {"t": 1795773590, "v": 2}]}'
    got = decode(payload, items={"path": "r", "time": "t"})
    assert got.points == [Point(NOW - 10_000_000, DEVICE, "v", 2.0)]
    assert reasons(got) == ["bad_timestamp"]


def test_missing_required_time() -> None:
    got = decode(b'{"v": 1}', time_path="ts")
    assert got == Decoded([], [Reject("missing_path", "time_path 'ts' found nothing")])


def test_too_many_leaves_keeps_the_first() -> None:
    payload = b"{" + b",".join(b'"m%d": %d' % (i, i) for i in range(10)) + b"}"
    got = decode(payload, max_leaves=4)
    assert [p.metric for p in got.points] == ["m0", "m1", "m2", "m3"]
    assert reasons(got) == ["too_many_leaves"]


def test_leaves_never_exceed_the_points_a_message_may_hold() -> None:
    payload = b'{"a": [' + b",".join(b"%d" % i for i in range(50)) + b"]}"
    got = decode(payload, limits=Limits(max_points_per_message=10))
    assert [p.metric for p in got.points] == [f"a.{i}" for i in range(10)]
    assert len(got.points) == 10
    assert reasons(got) == ["too_many_leaves"]


def test_too_deep_costs_only_the_deep_subtree() -> None:
    got = decode(b'{"ok": 1, "deep": {"a": {"b": {"c": 1}}}, "also": 2}', max_depth=2)
    assert [p.metric for p in got.points] == ["ok", "also"]
    assert reasons(got) == ["too_deep"]
    assert "'deep.a'" in got.rejects[0].detail


def test_bad_metric_name_from_a_key() -> None:
    got = decode(b'{"bad name": 1, "good": 2}')
    assert [p.metric for p in got.points] == ["good"]
    assert reasons(got) == ["bad_metric_name"]


def test_failing_expression_is_a_reject() -> None:
    # join() on numbers fails at run time: a reason, not an exception
    got = decode(
        b'[{"c": 1, "e": 2, "v": 1}, {"c": "in", "e": "x", "v": 1}]',
        items={"path": "@", "name": "join('.', [c, e])", "value": "v"},
    )
    assert got.points == [Point(NOW, DEVICE, "in.x", 1.0)]
    assert reasons(got) == ["path_error"]


def test_device_problems_fail_the_message() -> None:
    with pytest.raises(CodecError) as missing:
        decode(b'{"v": 1}', device_path="id")
    assert missing.value.reason == "missing_path"
    with pytest.raises(CodecError) as bad:
        decode(b'{"id": "no spaces", "v": 1}', device_path="id")
    assert bad.value.reason == "bad_device"


def test_scaled_value_beyond_a_double() -> None:
    got = decode(b'{"v": 1e300, "w": 1}', scale={"v": 1e10})
    assert got.points == [Point(NOW, DEVICE, "w", 1.0)]
    assert reasons(got) == ["non_finite_value"]


# --- configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics": {"t": "a.[b"}}, "options.metrics.t: 'a.[b' is not a JMESPath expression"),
        ({"time_path": "ts["}, "options.time_path: 'ts[' is not a JMESPath expression"),
        ({"items": {"path": "r", "name": "n"}}, "options.items: name and value go together"),
        ({"unknown": 1}, "options.unknown: unknown key"),
        ({"preset": "nope"}, "options.preset: unknown preset 'nope'"),
        ({"time_zone": "Mars/Olympus"}, "options.time_zone: unknown time zone"),
        ({"time_format": "julian"}, "options.time_format: unknown time format"),
        ({"device": "a b"}, "options.device: 'a b' is not a valid device id"),
        ({"max_depth": 0}, "options.max_depth: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="options") as caught:
        build_codec("mapping", options)
    assert message in str(caught.value)


def test_other_codecs_take_no_options() -> None:
    with pytest.raises(ValueError, match="takes no options"):
        build_codec("seed_json", {"preset": "flat"})


def test_a_bad_expression_is_a_config_error_naming_route_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        "[[mqtt.routes]]\n"
        'topic = "tele/{device_id}/SENSOR"\n'
        'codec = "mapping"\n'
        'options = { preset = "tasmota", metrics = { t = "BME280.[" } }\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    text = str(caught.value)
    assert "route 'tele/{device_id}/SENSOR'" in text
    assert "options.metrics.t" in text


def test_a_preset_route_loads(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        'mqtt.routes = [{ topic = "zigbee2mqtt/{device_id}", codec = "mapping", '
        'options = { preset = "zigbee2mqtt" } }]\n'
    )
    settings = load_settings(config)
    assert settings.mqtt.routes[0].options == {"preset": "zigbee2mqtt"}


def test_named_metrics_of_many_items_count_against_the_bound() -> None:
    payload = b'{"r": [' + b",".join(b'{"a": 1, "b": 2}' for _ in range(10)) + b"]}"
    got = decode(
        payload,
        limits=Limits(max_points_per_message=5),
        items={"path": "r"},
        metrics={"a": "a", "b": "b"},
    )
    assert [p.metric for p in got.points] == ["a", "b", "a", "b", "a"]
    assert reasons(got) == ["too_many_leaves"]
