"""The database sink's routes store the same rows, register the same
devices, count the same duplicates and isolate the same poison row: the
single INSERT ... FROM unnest statement (the default, and HTTP ingest's), the
binary COPY through a staging table (database.write_route = "copy"), and,
for a batch that also carries text values, each inside one transaction."""

from __future__ import annotations

import time

import asyncpg
import pytest

from bridge.batch import Batch
from bridge.config import DatabaseSettings
from bridge.sink import timescale
from bridge.sink.timescale import TimescaleSink
from core.types import Point, TextPoint

S = 1_000_000
NOW = time.time_ns() // 1000 // S * S
ROUTES = pytest.mark.parametrize("route", ["copy", "unnest"])


def batch(points: list[Point], sites: dict[str, str | None]) -> Batch:
    out = Batch()
    out.points.extend(points)
    out.sites.update(sites)
    return out


@ROUTES
async def test_points_registry_and_duplicates(plain_db: str, route: str) -> None:
    points = [Point(NOW - i * S, f"dev-{i % 3}", "flow_rate", float(i)) for i in range(30)]
    sites: dict[str, str | None] = {"dev-0": "site-a", "dev-1": None, "dev-2": "site-b"}
    with_text = batch([*points[5:15], Point(NOW + 2 * S, "dev-1", "rpm", 8.0)], {})
    with_text.texts.append(TextPoint(NOW, "dev-1", "state", "running"))
    settings = DatabaseSettings(url=plain_db, write_route=route)  # type: ignore[arg-type]
    async with TimescaleSink(settings) as db:
        first = await db.write(batch(points, sites))
        again = await db.write(batch([*points[:10], Point(NOW + S, "dev-0", "rpm", 7.0)], {}))
        texts = await db.write(with_text)  # one transaction: points and text
        nothing = await db.write(batch([], {}))
    assert (first.written, first.duplicates) == (30, 0)
    assert (again.written, again.duplicates) == (1, 10)
    assert (texts.written, texts.duplicates, texts.texts_written) == (1, 10, 1)
    assert (nothing.written, nothing.duplicates) == (0, 0)
    conn = await asyncpg.connect(plain_db)
    try:
        rows = await conn.fetch(
            "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::int8 AS t, value "
            "FROM telemetry"
        )
        devices = await conn.fetch(
            "SELECT device_id, site_id, status, last_seen IS NOT NULL AS seen FROM devices"
        )
        # Plain mode's rollups learn of new rows from a statement trigger, which
        # must fire for an INSERT inside a CTE too.
        pending = await conn.fetchval(
            "SELECT count(*) FROM telemetry_rollup_pending "
            "WHERE lo <= to_timestamp($1 / 1e6) AND hi >= to_timestamp($2 / 1e6)",
            NOW - 29 * S,
            NOW,
        )
    finally:
        await conn.close()
    want = {(p.device_id, p.metric, p.time_us, p.value) for p in points}
    want.add(("dev-0", "rpm", NOW + S, 7.0))
    want.add(("dev-1", "rpm", NOW + 2 * S, 8.0))
    assert sorted(tuple(r) for r in rows) == sorted(want)
    assert pending >= 1
    assert sorted(tuple(r) for r in devices) == [
        ("dev-0", "site-a", "online", True),
        ("dev-1", None, "online", True),
        ("dev-2", "site-b", "online", True),
    ]


@ROUTES
async def test_a_poison_row_costs_only_itself(plain_db: str, route: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute("ALTER TABLE telemetry ADD CONSTRAINT no_666 CHECK (value <> 666)")
    finally:
        await conn.close()
    points = [Point(NOW - i * S, "dev-0", "m", float(i)) for i in range(20)]
    evil = Point(NOW + S, "dev-0", "m", 666.0)
    settings = DatabaseSettings(url=plain_db, write_route=route)  # type: ignore[arg-type]
    async with TimescaleSink(settings) as db:
        result = await db.write(batch([*points[:10], evil, *points[10:]], {"dev-0": "s"}))
    assert result.written == 20
    assert [p for p, _ in result.poison] == [evil]
    assert "no_666" in result.poison[0][1]
    conn = await asyncpg.connect(plain_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 20
        assert await conn.fetchval("SELECT site_id FROM devices WHERE device_id = 'dev-0'") == "s"
    finally:
        await conn.close()


async def test_a_batch_meeting_stored_points_goes_again_with_on_conflict(
    plain_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one statement is tried first without ON CONFLICT; a batch that
    meets a stored point (or holds one twice) fails whole on the unique key
    and is written again with it: every new point stored once, the others
    counted as duplicates, nothing dead-lettered."""
    monkeypatch.setattr(timescale, "GUARDED_S", 0.0)  # every batch tries the cheap way first
    points = [Point(NOW - i * S, "dev", "flow_rate", float(i)) for i in range(15)]
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        first = await db.write(batch(points[:10], {"dev": "site"}))
        twice = await db.write(batch([points[10], points[10]], {}))
        mixed = await db.write(batch(points[5:15], {}))
    assert (first.written, first.duplicates, first.poison) == (10, 0, [])
    assert (twice.written, twice.duplicates, twice.poison) == (1, 1, [])
    assert (mixed.written, mixed.duplicates, mixed.poison) == (4, 6, [])
    conn = await asyncpg.connect(plain_db)
    try:
        stored = await conn.fetchval("SELECT count(DISTINCT time) FROM telemetry")
        rows = await conn.fetchval("SELECT count(*) FROM telemetry")
        letters = await conn.fetchval("SELECT count(*) FROM rejected_messages")
        site = await conn.fetchval("SELECT site_id FROM devices WHERE device_id = 'dev'")
    finally:
        await conn.close()
    assert (stored, rows, letters, site) == (15, 15, 0, "site")


async def test_after_a_conflict_batches_use_on_conflict_for_a_while(plain_db: str) -> None:
    points = [Point(NOW - i * S, "dev", "flow_rate", float(i)) for i in range(4)]
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        await db.write(batch(points[:2], {}))
        assert db._guarded_until == 0.0  # nothing met a stored point
        again = await db.write(batch(points[1:3], {}))
        assert (again.written, again.duplicates) == (1, 1)
        assert db._guarded_until > time.monotonic() + timescale.GUARDED_S - 5
        new = await db.write(batch(points[3:], {}))
    assert (new.written, new.duplicates) == (1, 0)


def test_points_go_in_grouped_by_series_in_arrival_order() -> None:
    """Sparkplug-shaped: messages of a hundred series each, taking turns over
    two nodes; the statement's rows come series by series, each series'
    points in the order they arrived, none lost or added."""
    points = [
        Point(NOW + msg * S, f"node-{msg % 2}", f"m{i:02d}", float(msg * 100 + i))
        for msg in range(6)
        for i in range(100)
    ]
    grouped = timescale._by_series(points)
    assert sorted(grouped) == sorted(points)
    series = [(p.device_id, p.metric) for p in grouped]
    runs = [s for k, s in enumerate(series) if k == 0 or series[k - 1] != s]
    assert len(runs) == len(set(series)) == 200  # each series in one run
    for device, metric in set(series):
        times = [p.time_us for p in grouped if (p.device_id, p.metric) == (device, metric)]
        assert times == sorted(times)
        assert len(times) == 3
    assert grouped[:3] == [points[0], points[200], points[400]]  # node-0 m00: first seen first


async def test_an_interleaved_batch_is_stored_whole(plain_db: str) -> None:
    points = [
        Point(NOW - msg * S, f"node-{msg % 3}", f"m{i}", float(i))
        for msg in range(9)
        for i in range(7)
    ]
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        result = await db.write(batch(points, {}))
    conn = await asyncpg.connect(plain_db)
    try:
        rows = await conn.fetch(
            "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::int8 AS t, value "
            "FROM telemetry"
        )
    finally:
        await conn.close()
    assert (result.written, result.duplicates) == (63, 0)
    assert sorted(tuple(r) for r in rows) == sorted(
        (p.device_id, p.metric, p.time_us, p.value) for p in points
    )


@ROUTES
async def test_registry_leaves_fresh_rows_alone_and_updates_the_rest(
    plain_db: str, route: str
) -> None:
    """A device the worker's cache has forgotten but whose row is fresh costs
    no write and no row lock (xmax stays 0); a stale row, a new site and an
    offline device are updated."""
    settings = DatabaseSettings(url=plain_db, write_route=route)  # type: ignore[arg-type]
    point = Point(NOW, "fresh", "flow_rate", 1.0)
    sites: dict[str, str | None] = {"fresh": "s1", "stale": "s1", "moved": "s1", "off": "s1"}
    async with TimescaleSink(settings) as db:
        await db.write(batch([point], sites))
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute(
            "UPDATE devices SET last_seen = now() - INTERVAL '1 minute' WHERE device_id = 'stale'"
        )
        await conn.execute("UPDATE devices SET status = 'offline' WHERE device_id = 'off'")
        before = dict(await conn.fetch("SELECT device_id, xmin::text FROM devices"))
        async with TimescaleSink(settings) as db:  # a new worker: its cache is empty
            again: dict[str, str | None] = {
                "fresh": None,
                "stale": None,
                "moved": "s2",
                "off": None,
            }
            await db.write(batch([point._replace(time_us=NOW + S)], again))
        after = {
            r["device_id"]: r
            for r in await conn.fetch(
                "SELECT device_id, xmin::text, xmax::text, site_id, status, "
                "last_seen > now() - INTERVAL '10 seconds' AS recent FROM devices"
            )
        }
    finally:
        await conn.close()
    assert (after["fresh"]["xmin"], after["fresh"]["xmax"]) == (before["fresh"], "0")
    for device in ("stale", "moved", "off"):
        assert after[device]["xmin"] != before[device]
        assert (after[device]["status"], after[device]["recent"]) == ("online", True)
    assert after["moved"]["site_id"] == "s2"
    assert after["stale"]["site_id"] == "s1"
