"""Whatever the bytes, a codec returns storable points and rejects, or raises
CodecError; nothing else. Checked on arbitrary bytes, arbitrary JSON values,
payloads of the right shape with hostile contents, and mutations of those."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec import CODECS, CodecError, DecodeContext, Decoded
from core.codec.flat_json import FlatJson
from core.codec.seed_json import SeedJson
from core.limits import Limits
from core.rules import FAST_LOADS, METRIC_NAME, TimeWindow
from core.types import Point, Reject

RECEIVED = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
DEVICE = "pump-0001"
LIMITS = Limits(max_points_per_message=40, max_payload_bytes=20_000)
MESSAGE_REASONS = {
    "payload_too_large",
    "malformed_json",
    "bad_shape",
    "device_mismatch",
    "too_many_points",
    "no_points",
    "no_metric",
}
POINT_REASONS = {
    "bad_metric_name",
    "bad_value",
    "non_finite_value",
    "bad_timestamp",
    "time_in_future",
    "time_too_old",
}
MAX_DETAIL = 300  # fixed text plus at most ~80 characters of input

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def contexts() -> st.SearchStrategy[DecodeContext]:
    return st.builds(
        DecodeContext,
        st.just(DEVICE),
        st.sampled_from([None, "temperature", "x" * 70]),
        st.sampled_from([RECEIVED, RECEIVED, RECEIVED, 0, 2**62]),
        st.just(LIMITS),
    )


def outcome(codec_name: str, payload: bytes, ctx: DecodeContext) -> Decoded | CodecError:
    """Decodes and checks every promise of the codec contract."""
    try:
        decoded = CODECS[codec_name].decode(payload, ctx)
    except CodecError as error:
        return checked_error(error)
    assert type(decoded) is Decoded
    assert decoded.points or decoded.rejects
    assert len(decoded.points) + len(decoded.rejects) <= ctx.limits.max_points_per_message
    window = TimeWindow.of(ctx)
    for point in decoded.points:
        assert type(point) is Point
        assert type(point.time_us) is int
        assert window.earliest_us <= point.time_us <= window.latest_us, point
        assert point.device_id == ctx.device_id
        assert type(point.metric) is str
        assert METRIC_NAME.fullmatch(point.metric), point
        assert len(point.metric) <= ctx.limits.max_metric_len
        assert type(point.value) is float
        assert math.isfinite(point.value), point
    for reject in decoded.rejects:
        assert type(reject) is Reject
        assert reject.reason in POINT_REASONS, reject
        assert len(reject.detail) <= MAX_DETAIL, reject
    return decoded


def checked_error(error: CodecError) -> CodecError:
    assert error.reason in MESSAGE_REASONS, error
    assert isinstance(error.detail, str)
    assert len(error.detail) <= MAX_DETAIL, error
    return error


# --- strategies -----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

metric_names = (
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,70}", fullmatch=True)
    | st.sampled_from(["flow_rate", "pip", "temperature", "", "1x", "a b", "é"])
    | st.text(max_size=10)
)

point_values = (
    st.floats()
    | st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 5e-324])
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.booleans()
    | st.sampled_from([None, "1.5", "", [], {}])
    | json_values
)


def _rfc3339(moment: datetime, digits: int, style: str) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    return text + {"z": "Z", "offset": "+02:00", "naive": ""}[style]


near = st.datetimes(
    min_value=datetime(2026, 8, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)
timestamps = (
    st.none()
    | st.none()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.integers(min_value=1_795_000_000, max_value=1_796_000_000)  # s
    | st.integers(min_value=1_795_000_000_000, max_value=1_796_000_000_000)  # ms
    | st.integers(min_value=1_795_000_000_000_000, max_value=1_796_000_000_000_000)  # µs
    | st.integers(min_value=1_795_000_000 * 10**9, max_value=1_796_000_000 * 10**9)  # ns
    | st.floats()
    | st.floats(min_value=1.795e9, max_value=1.796e9)
    | st.builds(
        _rfc3339,
        near,
        st.integers(min_value=0, max_value=9),
        st.sampled_from(["z", "offset", "naive"]),
    )
    | st.builds(lambda d: (d - timedelta(days=400)).isoformat(), near)
    | st.text(max_size=30)
    | st.booleans()
)
device_ids = st.sampled_from([DEVICE, DEVICE, DEVICE, "pump-0002", "", None, 1])

readings = st.fixed_dictionaries(
    {"data": st.dictionaries(metric_names, point_values, max_size=6)},
    optional={"device_id": device_ids, "timestamp": timestamps, "extra": json_values},
)
seed_docs = readings | st.lists(readings, max_size=6)

flat_points = st.fixed_dictionaries(
    {},
    optional={
        "metric": metric_names,
        "value": point_values,
        "ts": timestamps,
        "time": timestamps,
        "timestamp": timestamps,
        "device_id": device_ids,
        "unit": json_values,
    },
)
flat_docs = (
    flat_points
    | st.lists(flat_points, max_size=8)
    | st.fixed_dictionaries(
        {"points": st.lists(flat_points, max_size=8)}, optional={"device_id": device_ids}
    )
)


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity for non-finite floats, as devices do


@st.composite
def mutated(draw: st.DrawFn, docs: st.SearchStrategy[object]) -> bytes:
    data = bytearray(dumps(draw(docs)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat"]))
        if operation == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif operation == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=8))]
        elif operation == "insert":
            data[at:at] = draw(
                st.binary(min_size=1, max_size=8)
                | st.sampled_from([b'"', b"{", b"]", b",", b"\\", b"1e999", b"NaN", b"\xff"])
            )
        elif operation == "truncate":
            del data[at:]
        elif operation == "repeat":
            data[at:at] = data[at : at + 16]
    return bytes(data)


# --- properties ----------------------------------------------------------------


@PROPERTY
@given(st.sampled_from(sorted(CODECS)), st.binary(max_size=400), contexts())
def test_arbitrary_bytes(codec_name: str, payload: bytes, ctx: DecodeContext) -> None:
    outcome(codec_name, payload, ctx)


@PROPERTY
@given(st.sampled_from(sorted(CODECS)), json_values, contexts())
def test_arbitrary_json_values(codec_name: str, doc: object, ctx: DecodeContext) -> None:
    outcome(codec_name, dumps(doc), ctx)


@PROPERTY
@given(seed_docs, contexts())
def test_seed_json_accounts_for_every_point(doc: object, ctx: DecodeContext) -> None:
    result = outcome("seed_json", dumps(doc), ctx)
    docs = doc if isinstance(doc, list) else [doc]
    assert isinstance(docs, list)
    spoofed = any("device_id" in r and r["device_id"] != DEVICE for r in docs)
    count = sum(len(r["data"]) for r in docs)
    if spoofed:
        assert isinstance(result, CodecError)
        assert result.reason == "device_mismatch"
    elif count > LIMITS.max_points_per_message:
        assert isinstance(result, CodecError)
        assert result.reason == "too_many_points"
    elif count == 0:
        assert isinstance(result, CodecError)
        assert result.reason == "no_points"
    else:
        assert isinstance(result, Decoded)
        assert len(result.points) + len(result.rejects) == count


@PROPERTY
@given(flat_docs, contexts())
def test_flat_json_accounts_for_every_point(doc: object, ctx: DecodeContext) -> None:
    result = outcome("flat_json", dumps(doc), ctx)
    if isinstance(doc, dict) and "points" in doc:
        items, envelope = doc["points"], [doc]
    else:
        items, envelope = (doc if isinstance(doc, list) else [doc]), []
    assert isinstance(items, list)
    spoofed = any("device_id" in d and d["device_id"] != DEVICE for d in [*envelope, *items])
    if spoofed:
        assert isinstance(result, CodecError)
        assert result.reason == "device_mismatch"
    elif len(items) > LIMITS.max_points_per_message:
        assert isinstance(result, CodecError)
        assert result.reason == "too_many_points"
    elif not items:
        assert isinstance(result, CodecError)
        assert result.reason == "no_points"
    else:
        assert isinstance(result, Decoded)
        assert len(result.points) + len(result.rejects) == len(items)


valid_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
valid_values = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.booleans()
)
valid_ms = st.integers(min_value=RECEIVED // 1000 - 86_400_000, max_value=RECEIVED // 1000)


@PROPERTY
@given(
    st.lists(
        st.tuples(valid_ms, st.dictionaries(valid_names, valid_values, min_size=1, max_size=5)),
        min_size=1,
        max_size=6,
    )
)
def test_valid_seed_readings_become_exactly_their_points(
    readings: list[tuple[int, dict[str, float]]],
) -> None:
    doc = [{"device_id": DEVICE, "timestamp": ms, "data": data} for ms, data in readings]
    ctx = DecodeContext(DEVICE, None, RECEIVED, LIMITS)
    decoded = CODECS["seed_json"].decode(dumps(doc), ctx)
    assert decoded.rejects == []
    assert decoded.points == [
        Point(ms * 1000, DEVICE, name, float(value))
        for ms, data in readings
        for name, value in data.items()
    ]


@PROPERTY
@given(st.lists(st.tuples(valid_names, valid_values, valid_ms), min_size=1, max_size=8))
def test_valid_flat_points_become_exactly_these_points(
    items: list[tuple[str, float, int]],
) -> None:
    doc = {"points": [{"metric": m, "value": v, "ts": ms} for m, v, ms in items]}
    ctx = DecodeContext(DEVICE, None, RECEIVED, LIMITS)
    decoded = CODECS["flat_json"].decode(dumps(doc), ctx)
    assert decoded.rejects == []
    assert decoded.points == [Point(ms * 1000, DEVICE, m, float(v)) for m, v, ms in items]


@PROPERTY
@given(st.sampled_from(["seed_json", "flat_json"]), st.data(), contexts())
def test_mutated_payloads(codec_name: str, data: st.DataObject, ctx: DecodeContext) -> None:
    docs = seed_docs if codec_name == "seed_json" else flat_docs
    outcome(codec_name, data.draw(mutated(docs)), ctx)


@PROPERTY
@given(
    st.from_regex(
        rb"\s*[+-]?([0-9]{1,400}\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?\s*", fullmatch=True
    )
    | st.binary(max_size=40),
    contexts(),
)
def test_raw_values(payload: bytes, ctx: DecodeContext) -> None:
    result = outcome("raw_value", payload, ctx)
    if isinstance(result, Decoded) and result.points:
        state = {b"true": 1.0, b"on": 1.0, b"false": 0.0, b"off": 0.0}
        text = payload.strip()
        expected = state[text.lower()] if text.lower() in state else float(text)
        assert result.points[0].value == expected
        assert result.points[0].time_us == ctx.received_us


@PROPERTY
@given(st.sampled_from([SeedJson, FlatJson]), seed_docs | flat_docs | json_values, contexts())
def test_the_decoder_does_not_change_the_outcome(
    codec_class: type[SeedJson] | type[FlatJson], doc: object, ctx: DecodeContext
) -> None:
    """The decoder in use, orjson and the standard library give the same points
    and reasons, so the choice of decoder is only a matter of speed."""
    payload = dumps(doc)
    results = []
    for loads in (FAST_LOADS, orjson.loads, json.loads):
        try:
            decoded = codec_class(loads).decode(payload, ctx)
            results.append((decoded.points, [r.reason for r in decoded.rejects]))
        except CodecError as error:
            results.append(error.reason)
    assert results[0] == results[1] == results[2]
