"""Plain mode's time_bucket (migration 0004) buckets exactly as TimescaleDB's:
both run in one TimescaleDB database, the shim in a schema of its own."""

from __future__ import annotations

import random

import asyncpg

from bridge.config import DatabaseSettings

WIDTHS = [
    "1 millisecond",
    "1 second",
    "20 seconds",
    "1 minute",
    "5 minutes",
    "1 hour",
    "6 hours",
    "1 day",
    "7 days",
]


async def test_plain_time_bucket_matches_timescaledb(tsdb_db: str) -> None:
    (shim,) = DatabaseSettings().migrations_dir.glob("0004_*.plain.sql")
    rnd = random.Random(5)
    # Before and after the origin (2000-01-03) and the epoch, with microseconds.
    times_us = [rnd.randint(-(10**15), 2 * 10**15) for _ in range(300)] + [0, 946857600 * 10**6]
    conn = await asyncpg.connect(tsdb_db)
    try:
        await conn.execute("CREATE SCHEMA shim; SET search_path = shim")
        await conn.execute(shim.read_text())
        await conn.execute("SET search_path = public")
        differ = await conn.fetch(
            """
            SELECT w, t, public.time_bucket(w::interval, t) AS tsdb, shim.time_bucket(w::interval, t) AS ours
            FROM unnest($1::text[]) AS w,
                 unnest($2::bigint[]) AS us,
                 LATERAL (SELECT TIMESTAMPTZ 'epoch' + us * INTERVAL '1 microsecond' AS t) AS x
            WHERE public.time_bucket(w::interval, t) IS DISTINCT FROM shim.time_bucket(w::interval, t)
            """,
            WIDTHS,
            times_us,
        )
        assert not differ, differ[:5]
    finally:
        await conn.close()
