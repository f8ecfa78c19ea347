"""Properties of the mapping codec on arbitrary JSON: it keeps the codec
contract whatever the document and the options (points that can be stored,
rejects with a known reason, or CodecError; nothing else), and its "every
numeric leaf" mode finds exactly the leaves that an independent walker,
written here, finds, nesting bound included."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec import CodecError, DecodeContext, Decoded, build_codec
from core.codec.presets import PRESETS
from core.limits import Limits
from core.rules import METRIC_NAME, TimeWindow
from core.types import Point, Reject

RECEIVED = 1_795_773_600_000_000
DEVICE = "dev-1"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MESSAGE_REASONS = {"payload_too_large", "malformed_json", "no_points", "missing_path", "bad_device"}
POINT_REASONS = {
    "bad_metric_name",
    "bad_value",
    "non_finite_value",
    "bad_timestamp",
    "time_in_future",
    "time_too_old",
    "missing_path",
    "path_error",
    "bad_device",
    "too_deep",
    "too_many_leaves",
}

keys = st.one_of(
    st.sampled_from(["a", "b", "Temperature", "ts", "id", "params", "events", "x.y", "0", "_"]),
    st.text(max_size=8),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(["ON", "off", "21.5", "-3e2", "1e999", "2026-11-27T10:00:00Z"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=40,
)

OPTION_SETS: list[dict[str, Any]] = [
    *({"preset": name} for name in sorted(PRESETS)),
    {"metrics": {"t": "a.Temperature", "n": "length(@)"}, "scale": {"t": 1e308}},
    {"device_path": "id", "time_path": "ts", "time_format": "epoch_ms"},
    {"items": {"path": "events", "time": "ts", "device": "id"}, "max_depth": 2},
    {"items": {"path": "@", "name": "a", "value": "b"}, "numeric_strings": True},
    {"time_path": "ts", "time_format": "%Y-%m-%d", "time_zone": "Europe/Berlin", "max_leaves": 3},
]


def contract(options: dict[str, Any], payload: bytes, limits: Limits) -> Decoded | CodecError:
    codec = build_codec("mapping", options)
    ctx = DecodeContext(DEVICE, "m", RECEIVED, limits)
    try:
        decoded = codec.decode(payload, ctx)
    except CodecError as error:
        return checked_error(error)
    assert type(decoded) is Decoded
    assert decoded.points or decoded.rejects
    assert len(decoded.points) <= limits.max_points_per_message
    window = TimeWindow.of(ctx)
    for point in decoded.points:
        assert type(point) is Point
        assert window.earliest_us <= point.time_us <= window.latest_us
        assert METRIC_NAME.fullmatch(point.metric)
        assert len(point.metric) <= limits.max_metric_len
        assert type(point.value) is float
        assert math.isfinite(point.value)
    for reject in decoded.rejects:
        assert type(reject) is Reject
        assert reject.reason in POINT_REASONS, reject
        assert len(reject.detail) <= 400, reject
    return decoded


def checked_error(error: CodecError) -> CodecError:
    assert error.reason in MESSAGE_REASONS, error
    assert len(error.detail) <= 400, error
    return error


@PROPERTY
@given(st.sampled_from(range(len(OPTION_SETS))), documents)
def test_arbitrary_json_keeps_the_contract(which: int, doc: object) -> None:
    contract(OPTION_SETS[which], _dumps(doc), Limits(max_points_per_message=30))


@PROPERTY
@given(st.sampled_from(range(len(OPTION_SETS))), st.binary(max_size=200))
def test_arbitrary_bytes_keep_the_contract(which: int, payload: bytes) -> None:
    contract(OPTION_SETS[which], payload, Limits())


def walk(doc: object, path: tuple[str, ...], depth: int, max_depth: int) -> Iterator[Any]:
    """Independent of the codec: ("leaf", name, value) for every number or
    boolean, ("deep", name) for every container the depth bound cuts off."""
    pairs = doc.items() if isinstance(doc, dict) else enumerate(doc)  # type: ignore[union-attr]
    for key, value in pairs:
        here = (*path, str(key))
        if isinstance(value, dict | list):
            if depth >= max_depth:
                yield ("deep", ".".join(here))
            else:
                yield from walk(value, here, depth + 1, max_depth)
        elif isinstance(value, bool | int | float):
            yield ("leaf", ".".join(here), value)


@PROPERTY
@given(
    st.dictionaries(keys, documents, max_size=6),
    st.integers(min_value=1, max_value=5),
)
def test_every_numeric_leaf_is_found(doc: dict[str, object], max_depth: int) -> None:
    limits = Limits(max_points_per_message=100_000)
    options = {"leaves": True, "max_depth": max_depth, "max_leaves": 100_000}
    result = contract(options, _dumps(doc), limits)
    expected = list(walk(doc, (), 1, max_depth))
    if not expected:
        assert isinstance(result, CodecError)
        assert result.reason == "no_points"
        return
    assert isinstance(result, Decoded)
    storable = [
        (e[1], _double(e[2]))
        for e in expected
        if e[0] == "leaf"
        and METRIC_NAME.fullmatch(e[1])
        and len(e[1]) <= limits.max_metric_len
        and _double(e[2]) is not None
    ]
    assert [(p.metric, p.value) for p in result.points] == storable
    assert {p.device_id for p in result.points} <= {DEVICE}
    assert {p.time_us for p in result.points} <= {RECEIVED}
    rejected = [r.reason for r in result.rejects]
    assert rejected.count("too_deep") == sum(1 for e in expected if e[0] == "deep")
    leaves = sum(1 for e in expected if e[0] == "leaf")
    assert rejected.count("bad_metric_name") + rejected.count("non_finite_value") == (
        leaves - len(storable)
    )


def _double(value: bool | float) -> float | None:
    try:
        return float(value)
    except OverflowError:  # an integer beyond a double
        return None


def _dumps(doc: object) -> bytes:
    """JSON for any generated document (orjson cannot write integers past 64 bits)."""
    return json.dumps(doc).encode()
