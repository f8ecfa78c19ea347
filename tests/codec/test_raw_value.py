"""raw_value: a bare number or switch state, the metric from the topic."""

from __future__ import annotations

import pytest

from core.codec import CODECS, CodecError, DecodeContext, Decoded
from core.limits import Limits
from core.types import Point, Reject

RECEIVED = 1_795_773_600_000_000
DEVICE = "esp32-kitchen"
codec = CODECS["raw_value"]


def decode(
    payload: bytes, metric: str | None = "temperature", limits: Limits | None = None
) -> Decoded:
    return codec.decode(payload, DecodeContext(DEVICE, metric, RECEIVED, limits or Limits()))


def refused(
    payload: bytes, metric: str | None = "temperature", limits: Limits | None = None
) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(payload, metric, limits)
    return info.value


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"23.5", 23.5),
        (b"-1e3", -1000.0),
        (b"1", 1.0),
        (b"0", 0.0),
        (b"-0.0", -0.0),
        (b"+4.25", 4.25),
        (b".5", 0.5),
        (b"5.", 5.0),
        (b"007", 7.0),
        (b"1E-3", 0.001),
        (b" 23.50\r\n", 23.5),
        (b"\t-2\n", -2.0),
        (b"true", 1.0),
        (b"false", 0.0),
        (b"ON", 1.0),
        (b"OFF", 0.0),
        (b"On", 1.0),
        (b"oFf", 0.0),
        (b"TRUE", 1.0),
        (b" off ", 0.0),
    ],
)
def test_numbers_and_states(payload: bytes, value: float) -> None:
    assert decode(payload) == Decoded([Point(RECEIVED, DEVICE, "temperature", value)], [])


@pytest.mark.parametrize(
    "payload",
    [
        b"abc",
        b"1_000",
        b"0x10",
        b"1,5",
        b"1 2",
        b"--1",
        b"1e",
        b".",
        b"e5",
        b'"23.5"',
        b"23.5 C",
        b"null",
        b"yes",
        b"\xd9\xa1\xd9\xa2",  # Arabic-Indic digits, which float() alone would take
        b"\xff\xfe",
        b"23.5\x00",
        b'{"value": 1}',
    ],
)
def test_anything_else_is_a_bad_value(payload: bytes) -> None:
    decoded = decode(payload)
    assert decoded.points == []
    assert [r.reason for r in decoded.rejects] == ["bad_value"]
    assert decoded.rejects[0].detail.startswith("temperature: ")


@pytest.mark.parametrize("payload", [b"1e999", b"-1e999", b"nan", b"NaN", b"-inf", b"Infinity"])
def test_non_finite_values(payload: bytes) -> None:
    assert [r.reason for r in decode(payload).rejects] == ["non_finite_value"]


def test_a_long_payload_is_not_echoed_whole() -> None:
    (reject,) = decode(b"z" * 100_000).rejects
    assert len(reject.detail) < 200


@pytest.mark.parametrize("payload", [b"", b"   ", b"\r\n"])
def test_an_empty_payload_holds_no_reading(payload: bytes) -> None:
    assert refused(payload).reason == "no_points"


def test_without_a_metric_in_the_topic() -> None:
    error = refused(b"23.5", metric=None)
    assert error.reason == "no_metric"


def test_the_topic_metric_obeys_the_limits() -> None:
    decoded = decode(b"1", metric="abcdef", limits=Limits(max_metric_len=5))
    assert decoded == Decoded(
        [], [Reject("bad_metric_name", "metric name 'abcdef' is longer than 5 characters")]
    )


def test_payload_too_large() -> None:
    limits = Limits(max_payload_bytes=64)
    assert refused(b"1" + b" " * 64, limits=limits).reason == "payload_too_large"
    assert decode(b"1" + b" " * 63, limits=limits).points[0].value == 1.0
