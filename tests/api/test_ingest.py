"""HTTP ingest bodies: the codecs' rules, all-or-nothing, and commits that
concurrent requests share, against a real database and Redis."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.api.ingest import BadBody, IngestWriter, Unavailable, parse_body
from bridge.cache.reader import CacheReader
from bridge.cache.writer import CacheWriter
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from core.limits import Limits
from core.types import Point

LIMITS = Limits()
NOW = time.time_ns() // 1000
S = 1_000_000


def body(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_a_seed_reading_becomes_its_points() -> None:
    doc = {
        "device_id": "dev_17",
        "site_id": "site-3",
        "timestamp": "2026-11-27T03:00:00Z",
        "data": {"flow_rate": 1234.5, "pip": 2700, "running": True},
    }
    parsed = parse_body(body(doc), LIMITS, batch=False, received_us=1_795_748_400 * S + 5)
    t = 1_795_748_400 * S
    assert parsed.problems == []
    assert parsed.points == [
        Point(t, "dev_17", "flow_rate", 1234.5),
        Point(t, "dev_17", "pip", 2700.0),
        Point(t, "dev_17", "running", 1.0),
    ]
    assert parsed.sites == {"dev_17": "site-3"}


def test_no_timestamp_means_the_receive_time() -> None:
    parsed = parse_body(body({"device_id": "d", "data": {"m": 1}}), LIMITS, False, NOW)
    assert parsed.points == [Point(NOW, "d", "m", 1.0)]


def test_every_problem_is_named_with_its_reading_and_metric() -> None:
    doc = {
        "readings": [
            {"device_id": "ok", "data": {"a": 1}},
            {"device_id": "bad device!", "data": {"a": 1}},
            {"device_id": "d", "data": {"a": "high", "b": 2, "9x": 1}},
            {"device_id": "d", "timestamp": "2999-01-01T00:00:00Z", "data": {"a": 1}},
            "not an object",
            {"device_id": "d"},
        ]
    }
    parsed = parse_body(body(doc), LIMITS, batch=True, received_us=NOW)
    found = [(p.reading, p.metric, p.reason) for p in parsed.problems]
    assert found == [
        (1, None, "bad_device"),
        (2, "a", "bad_value"),
        (2, "9x", "bad_metric_name"),
        (3, None, "time_in_future"),
        (4, None, "bad_shape"),
        (5, None, "bad_shape"),
    ]


def test_nan_and_infinity_are_refused() -> None:
    raw = b'{"device_id": "d", "data": {"a": NaN, "b": 1e999, "c": 1}}'
    parsed = parse_body(raw, LIMITS, batch=False, received_us=NOW)
    assert [(p.metric, p.reason) for p in parsed.problems] == [
        ("a", "non_finite_value"),
        ("b", "non_finite_value"),
    ]


@pytest.mark.parametrize(
    ("raw", "batch", "reason", "status"),
    [
        (b"{", False, "malformed_json", 400),
        (b"[1, 2]", False, "bad_shape", 400),
        (b'{"points": []}', True, "bad_shape", 400),
        (b"x" * (LIMITS.max_payload_bytes + 1), False, "payload_too_large", 413),
    ],
)
def test_a_body_that_is_not_readings(raw: bytes, batch: bool, reason: str, status: int) -> None:
    with pytest.raises(BadBody) as caught:
        parse_body(raw, LIMITS, batch, NOW)
    assert (caught.value.reason, caught.value.status) == (reason, status)


def test_too_many_points_is_refused_whole() -> None:
    limits = Limits(max_points_per_message=5)
    doc = {"readings": [{"device_id": "d", "data": {f"m{i}": i for i in range(3)}}] * 2}
    with pytest.raises(BadBody) as caught:
        parse_body(body(doc), limits, True, NOW)
    assert caught.value.status == 413


@given(st.binary(max_size=300))
def test_any_bytes_give_points_problems_or_bad_body(raw: bytes) -> None:
    for batch in (False, True):
        try:
            parsed = parse_body(raw, LIMITS, batch, NOW)
        except BadBody:
            continue
        assert all(isinstance(p, Point) for p in parsed.points)


async def test_concurrent_requests_share_commits_and_all_arrive(
    plain_db: str, redis_url: str
) -> None:
    async with (
        TimescaleSink(DatabaseSettings(url=plain_db), one_statement=True) as db,  # as the API
        CacheWriter(redis_url, future_skew_s=0) as cache,
        CacheReader(redis_url) as reader,
        IngestWriter(db, cache) as writer,
    ):
        requests = [[Point(NOW - i * S, f"dev-{i % 7}", "flow_rate", float(i))] for i in range(300)]
        await asyncio.gather(*(writer.submit(points, {}, timeout=30) for points in requests))
        # The same again: a client retrying is harmless.
        await writer.submit(requests[0], {}, timeout=30)
        for _ in range(600):  # the cache is written after the answer, best effort: 30 s
            if len(await reader.recent("dev-0", "flow_rate", 0, 2**62)) == 43:
                break
            await asyncio.sleep(0.05)
    conn = await asyncpg.connect(plain_db)
    try:
        rows = await conn.fetch("SELECT device_id, value FROM telemetry ORDER BY value")
        assert [r["value"] for r in rows] == [float(i) for i in range(300)]
        commits = await conn.fetchval(
            "SELECT count(*) FROM telemetry_rollup_pending"
        )  # one row per INSERT statement, i.e. per commit
        assert commits < 300
    finally:
        await conn.close()
    async with CacheReader(redis_url) as reader:
        assert len(await reader.recent("dev-0", "flow_rate", 0, 2**62)) == 43


async def test_a_database_that_is_down_answers_unavailable() -> None:
    settings = DatabaseSettings(url="postgresql://postgres@127.0.0.1:1/x", connect_timeout_s=1)
    async with TimescaleSink(settings) as db, IngestWriter(db, None) as writer:
        with pytest.raises(Unavailable, match="database"):
            await writer.submit([Point(NOW, "d", "m", 1.0)], {}, timeout=5)
