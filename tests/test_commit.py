"""The committer on a real PostgreSQL: poison rows dead-lettered through the
router's bounds, counted, kept out of the cache; transient errors retried or
raised; and the one definition of "transient" the API uses too."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from bridge.batch import Batch
from bridge.commit import Committer
from bridge.config import DatabaseSettings
from bridge.errors import DatabaseUnavailable, TransientDbError
from bridge.router import MAX_DL_DETAIL, db_rejected
from bridge.sink.timescale import TimescaleSink, is_poison, is_transient
from bridge.telemetry import Metrics
from core.types import Point

S = 1_000_000
NOW = time.time_ns() // 1000 // S * S
DOWN = DatabaseSettings(url="postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("exc", "transient", "poison"),
    [
        (ConnectionRefusedError(), True, False),
        (TimeoutError(), True, False),
        (asyncpg.CannotConnectNowError("starting up"), True, False),
        (asyncpg.SerializationError("retry"), True, False),
        (asyncpg.CheckViolationError("no"), False, True),
        (asyncpg.UndefinedTableError("migrate"), False, False),  # needs a person
        (ValueError("bug"), False, False),
    ],
)
def test_transient_and_poison_by_sqlstate_class(
    exc: BaseException, transient: bool, poison: bool
) -> None:
    assert is_transient(exc) is transient
    assert is_poison(exc) is poison


def test_a_db_rejected_letter_keeps_the_table_bounds() -> None:
    letter = db_rejected(Point(NOW, "dev", "m", 666.0), "é" * 2000 + "\x00")
    assert letter.topic == "dev/m"
    assert letter.reason == "db_rejected"
    assert len(letter.detail.encode()) <= MAX_DL_DETAIL
    assert "\x00" not in letter.detail
    assert (letter.received_us, letter.payload, letter.payload_size) == (NOW, b"", 0)


async def test_a_poison_row_is_dead_lettered_counted_and_not_cached(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute("ALTER TABLE telemetry ADD CONSTRAINT no_666 CHECK (value <> 666)")
    finally:
        await conn.close()
    good = [Point(NOW - i * S, "dev", "flow", float(i)) for i in range(5)]
    evil = Point(NOW, "dev", "evil", 666.0)
    cached: list[list[Point]] = []
    metrics = Metrics()
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        committer = Committer(db, metrics, cache=cached.append)
        result = await committer.commit(Batch(points=[*good[:2], evil, *good[2:]]))
    assert (result.written, result.duplicates) == (5, 0)
    [(point, letter)] = result.refused
    assert point == evil
    assert "no_666" in letter.detail
    assert cached == [good]
    assert sample(metrics, "bridge_points_rejected_total", reason="db_rejected") == 1
    assert sample(metrics, "telemetry_points_total") == 5
    assert sample(metrics, "bridge_batches_total") == 1
    assert committer.db_ok
    conn = await asyncpg.connect(plain_db)
    try:
        rows = await conn.fetch("SELECT topic, reason, detail FROM rejected_messages")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("dev/evil", "db_rejected", letter.detail)]


async def test_without_retry_a_down_database_raises_at_once() -> None:
    metrics = Metrics()
    async with TimescaleSink(DOWN) as db:
        committer = Committer(db, metrics, retry=False)
        with pytest.raises(TransientDbError) as caught:
            await committer.commit(Batch(points=[Point(NOW, "d", "m", 1.0)]))
    assert isinstance(caught.value, DatabaseUnavailable)
    assert not committer.db_ok
    assert sample(metrics, "bridge_db_retries_total", reason=caught.value.reason) == 0


async def test_with_retry_a_down_database_is_retried_with_backoff() -> None:
    metrics = Metrics()
    async with TimescaleSink(DOWN) as db:
        committer = Committer(db, metrics)
        task = asyncio.create_task(committer.commit(Batch(points=[Point(NOW, "d", "m", 1.0)])))
        retries = 0.0
        deadline = time.monotonic() + 20
        while retries < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            retries = sum(
                s.value
                for m in metrics.registry.collect()
                if m.name == "bridge_db_retries"
                for s in m.samples
                if s.name == "bridge_db_retries_total"
            )
        assert retries >= 3
        assert not task.done()  # still retrying: nothing was dropped
        assert not committer.db_ok
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_historical_points_are_stored_but_not_cached(plain_db: str) -> None:
    """Sparkplug is_historical: a batch's uncached points go to the database
    and stay out of the cache, which holds the latest values."""
    live = [Point(NOW, "dev", "flow", 1.0)]
    old = [Point(NOW - 60 * S, "dev", "flow", 2.0), Point(NOW - 59 * S, "dev", "pip", 3.0)]
    cached: list[list[Point]] = []
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        committer = Committer(db, Metrics(), cache=cached.append)
        batch = Batch(points=[*live, *old], uncached=set(old))
        result = await committer.commit(batch)
    assert (result.written, result.duplicates) == (3, 0)
    assert cached == [live]
