"""Dead letters are idempotent under redelivery (db/migrations/0005), in each
schema mode: the same reject written again is one row, different rejects
keep their own rows."""

from __future__ import annotations

import asyncpg

from bridge.batch import Batch
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from core.types import DeadLetter

HOUR_US = 3_600_000_000
BOUNDARY = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z, an hour boundary


def letter(received_us: int, payload: bytes = b"{not json", topic: str = "t/s/d") -> DeadLetter:
    return DeadLetter(received_us, topic, "bad_payload", "not JSON", payload, len(payload))


async def rows(url: str) -> list[tuple[int, bytes]]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch(
            "SELECT (extract(epoch FROM received_at) * 1000000)::int8 AS r, payload "
            "FROM rejected_messages ORDER BY id"
        )
    finally:
        await conn.close()
    return [(r["r"], r["payload"]) for r in found]


async def test_a_redelivered_reject_is_one_row_even_across_an_hour_boundary(any_db: str) -> None:
    first = letter(BOUNDARY - 2_000_000)  # 09:59:58
    async with TimescaleSink(DatabaseSettings(url=any_db)) as db:
        await db.write(Batch(dead_letters=[first]))
        await db.write(Batch(dead_letters=[letter(BOUNDARY - 1_000_000)]))  # redelivered
        await db.write(Batch(dead_letters=[letter(BOUNDARY + 3_000_000)]))  # next hour
        await db.write(Batch(dead_letters=[first, first]))  # twice in one batch
    assert await rows(any_db) == [(first.received_us, first.payload)]


async def test_distinct_rejects_keep_their_own_rows(any_db: str) -> None:
    letters = [
        letter(BOUNDARY, b"{not json"),
        letter(BOUNDARY, b"{not json either"),  # other bytes
        letter(BOUNDARY, b"{not json", topic="t/s/other"),  # other topic
        letter(BOUNDARY + 3 * HOUR_US, b"{not json"),  # same bytes, hours later
    ]
    async with TimescaleSink(DatabaseSettings(url=any_db)) as db:
        await db.write(Batch(dead_letters=letters))
        await db.write(Batch(dead_letters=letters))  # all redelivered
    assert len(await rows(any_db)) == 4


async def test_points_the_database_refused_are_keyed_by_their_own_time(any_db: str) -> None:
    refused = [
        DeadLetter(BOUNDARY + i, "dev/m", "db_rejected", "violates check constraint", b"", 0)
        for i in range(3)  # three points of one series, a microsecond apart
    ]
    async with TimescaleSink(DatabaseSettings(url=any_db)) as db:
        await db.write(Batch(dead_letters=refused))
        await db.write(Batch(dead_letters=refused))  # redelivered
    assert [r for r, _ in await rows(any_db)] == [BOUNDARY, BOUNDARY + 1, BOUNDARY + 2]
