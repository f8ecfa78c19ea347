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
