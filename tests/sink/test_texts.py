"""String values (db/migrations/0006): committed in the same transaction as
the batch's numeric points, once each under redelivery, in each schema mode;
a text the database refuses costs only itself."""

from __future__ import annotations

import time

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from bridge.batch import Batch
from bridge.commit import Committer
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from bridge.telemetry import CommitMetrics
from core.types import Point, TextPoint

S = 1_000_000
NOW = time.time_ns() // 1000 // S * S


def batch(points: list[Point], texts: list[TextPoint]) -> Batch:
    out = Batch()
    out.points.extend(points)
    out.texts.extend(texts)
    out.sites.update({p.device_id: None for p in [*points, *texts]})
    return out


async def stored(url: str) -> tuple[set[tuple[str, str, int, str]], int]:
    conn = await asyncpg.connect(url)
    try:
        texts = await conn.fetch(
            "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::int8 AS t, text "
            "FROM telemetry_text"
        )
        numbers = await conn.fetchval("SELECT count(*) FROM telemetry")
    finally:
        await conn.close()
    return {(r["device_id"], r["metric"], r["t"], r["text"]) for r in texts}, numbers


async def test_texts_are_stored_once_beside_the_points(any_db: str) -> None:
    points = [Point(NOW - i * S, "plc-1", "temp", float(i)) for i in range(5)]
    texts = [TextPoint(NOW - i * S, "plc-1", "state", f'run é{i} ,= "x"') for i in range(7)]
    async with TimescaleSink(DatabaseSettings(url=any_db)) as db:
        first = await db.write(batch(points, texts))
        again = await db.write(batch(points[:2], [*texts[:3], texts[0]]))  # redelivered
        more = await db.write(batch([], [TextPoint(NOW + S, "plc-1", "state", "")]))
    assert (first.written, first.texts_written, first.texts_duplicate) == (5, 7, 0)
    assert (again.written, again.duplicates) == (0, 2)
    assert (again.texts_written, again.texts_duplicate) == (0, 4)
    assert (more.texts_written, more.texts_duplicate) == (1, 0)
    rows, numbers = await stored(any_db)
    assert numbers == 5
    assert rows == {(t.device_id, t.metric, t.time_us, t.text) for t in texts} | {
        ("plc-1", "state", NOW + S, "")
    }


async def test_a_refused_text_costs_only_itself(plain_db: str) -> None:
    bad = TextPoint(NOW, "plc-1", "state", "x" * 70_000)  # past the table's CHECK
    good = TextPoint(NOW, "plc-1", "mode", "auto")
    point = Point(NOW, "plc-1", "temp", 1.5)
    registry = CollectorRegistry()
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        out = await Committer(db, CommitMetrics(registry)).commit(batch([point], [bad, good]))
    assert (out.written, out.texts_written) == (1, 1)
    assert [p for p, _ in out.refused] == [bad]
    assert out.refused[0][1].reason == "db_rejected"
    rows, numbers = await stored(plain_db)
    assert (rows, numbers) == ({("plc-1", "mode", NOW, "auto")}, 1)
    assert registry.get_sample_value("telemetry_text_values_total") == 1
    assert registry.get_sample_value("bridge_points_rejected_total", {"reason": "db_rejected"}) == 1


@pytest.mark.parametrize("bad_at", [0, 1])
async def test_a_failed_transaction_stores_no_text(plain_db: str, bad_at: int) -> None:
    """A point refused inside the transaction rolls back that attempt's texts
    with it; the isolated retry then stores each good row exactly once."""
    points = [Point(NOW, "plc-1", "temp", 1.0), Point(NOW + S, "plc-1", "temp", 2.0)]
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute(
            "ALTER TABLE telemetry ADD CONSTRAINT lp_no_two CHECK (value <> $1)".replace(
                "$1", str(points[bad_at].value)
            )
        )
    finally:
        await conn.close()
    texts = [TextPoint(NOW, "plc-1", "state", "a"), TextPoint(NOW + S, "plc-1", "state", "b")]
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        out = await db.write(batch(points, texts))
    assert [p for p, _ in out.poison] == [points[bad_at]]
    assert (out.written, out.texts_written, out.texts_duplicate) == (1, 2, 0)
    rows, numbers = await stored(plain_db)
    assert (len(rows), numbers) == (2, 1)
