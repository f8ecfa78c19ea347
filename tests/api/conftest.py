"""A world for the API tests: three hours of points for two devices, committed
through the bridge's own sinks to a database of each mode and to the cache."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis

from bridge.api.series import SeriesReader
from bridge.api.store import Mode
from bridge.batch import Batch
from bridge.cache.reader import CacheReader
from bridge.cache.writer import CacheWriter
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from core.types import Point

S = 1_000_000
MINUTE, HOUR = 60 * S, 3600 * S
WINDOW_S = 900
DEVICE = "pump-1"


@dataclass
class World:
    db_url: str
    conn: asyncpg.Connection
    cache: CacheReader
    mode: Mode
    now_us: int
    points: list[Point]

    def reader(self, cache: CacheReader | None = None, series_points: int = 2000) -> SeriesReader:
        return SeriesReader(self.mode, cache or self.cache, series_points, WINDOW_S)

    def truth(self, start: int, end: int) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for p in sorted(self.points):
            if p.device_id == DEVICE and start <= p.time_us < end:
                out.setdefault(p.metric, []).append((p.time_us, p.value))
        return out


async def _mode(conn: asyncpg.Connection) -> Mode:
    mode = await conn.fetchval("SELECT mode FROM bridge_schema_migrations LIMIT 1")
    return "timescaledb" if mode == "timescaledb" else "plain"


@pytest.fixture
async def world(any_db: str, redis_url: str) -> AsyncIterator[World]:
    """Three hours of 10-second points for two metrics (and another device),
    all committed; the cache holds those of its window, vouched for since
    20 minutes ago (so its window start decides the seam)."""
    now_us = time.time_ns() // 1000
    rnd = random.Random(7)
    points = [
        Point(t, dev, metric, round(rnd.uniform(-100, 100), 3))
        for t in range(now_us - 3 * HOUR, now_us, 10 * S)
        for dev in (DEVICE, "pump-2")
        for metric in ("flow_rate", "pip")
    ]
    async with TimescaleSink(DatabaseSettings(url=any_db)) as db:
        for i in range(0, len(points), 1000):
            batch = Batch(points=points[i : i + 1000], sites={DEVICE: "s1", "pump-2": "s1"})
            await db.write(batch)
    async with (
        CacheWriter(redis_url, window_s=WINDOW_S, future_skew_s=0) as writer,
        CacheReader(redis_url) as cache,
    ):
        recent = [p for p in points if p.time_us >= now_us - WINDOW_S * S]
        await writer.write(recent, now_us)
        await set_marker(redis_url, now_us - 20 * MINUTE)
        conn = await asyncpg.connect(any_db)
        try:
            yield World(any_db, conn, cache, await _mode(conn), now_us, points)
        finally:
            await conn.close()


async def set_marker(redis_url: str, time_us: int) -> None:
    """As the writers would after vouching for the cache since ``time_us``."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("bridge:complete_since", str(time_us))
    finally:
        await client.aclose()
