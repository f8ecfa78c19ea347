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
from core.types import Point, TextPoint

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


async def test_waiting_batches_are_committed_together_and_each_is_settled(plain_db: str) -> None:
    """A writer that finds batches waiting commits them in one statement, up
    to max_merged_points, settles every one of them, and stops at its None
    after that commit; what is left waits for the next writer."""
    batches: asyncio.Queue[Batch | None] = asyncio.Queue()
    sent = [
        Batch(
            points=[Point(NOW - k * S, f"dev-{b}", "flow", float(k)) for k in range(3)],
            texts=[TextPoint(NOW, f"dev-{b}", "state", "run")] if b == 1 else [],
            sites={f"dev-{b}": f"site-{b}"},
        )
        for b in range(5)
    ]
    for batch in sent[:4]:
        batches.put_nowait(batch)
    batches.put_nowait(None)
    batches.put_nowait(sent[4])  # behind the stop: not this writer's
    settled: list[tuple[Batch, int]] = []
    cached: list[list[Point]] = []
    metrics = Metrics()
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db:
        committer = Committer(db, metrics, cache=cached.append, max_merged_points=9)
        await asyncio.wait_for(
            committer.drain(batches, lambda b, r: settled.append((b, r.written))), 30
        )
    # 3 points each: batches 0-2 reach the limit together; 3 is taken with the None.
    assert [(sent.index(b), written) for b, written in settled] == [
        (0, 9),
        (1, 9),
        (2, 9),
        (3, 3),
    ]
    assert sample(metrics, "bridge_batches_total") == 2
    assert [len(points) for points in cached] == [9, 3]
    assert batches.get_nowait() is sent[4]
    conn = await asyncpg.connect(plain_db)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM telemetry")
        texts = await conn.fetchval("SELECT count(*) FROM telemetry_text")
        devices = await conn.fetch("SELECT device_id, site_id FROM devices ORDER BY 1")
    finally:
        await conn.close()
    assert (rows, texts) == (12, 1)
    assert [tuple(r) for r in devices] == [(f"dev-{b}", f"site-{b}") for b in range(4)]
