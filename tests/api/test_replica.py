"""History reads from a real streaming replica (scripts/stack.sh up test
replica: pg_basebackup, hot standby on its own port), with replay paused and
resumed: no gap and no duplicate, and the replica used whenever it has
replayed far enough (X-Database says which database served the read)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bridge.api.answers import iso
from bridge.api.service import Api
from bridge.batch import Batch
from bridge.cache.writer import CacheWriter
from bridge.config import DatabaseSettings, Settings
from bridge.sink.timescale import TimescaleSink
from core.types import Point
from tests.api.conftest import set_marker
from tests.conftest import STACK, Stack

S = 1_000_000
MINUTE = 60 * S
DEVICE, METRIC = "pump-r", "pip"
WINDOW_S = 60


@pytest.fixture(scope="session")
def replica_port(stack: Stack) -> int:
    subprocess.run(["bash", str(STACK), "up", "test", "replica"], check=True)
    return int(os.environ.get("STACK_TEST_PG_REPLICA_PORT", stack.pg_port + 1))


@pytest.fixture
async def replica_url(plain_db: str, replica_port: int) -> AsyncIterator[str]:
    """The test database on the replica (CREATE DATABASE streams there too)."""
    head, _, tail = plain_db.rpartition(":")
    url = f"{head}:{replica_port}/{tail.split('/', 1)[1]}"
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = await asyncpg.connect(url)
            await conn.close()
            break
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    yield url
    conn = await asyncpg.connect(url)  # never leave the shared replica paused
    try:
        await conn.execute("SELECT pg_wal_replay_resume()")
    finally:
        await conn.close()


async def replica_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM telemetry WHERE device_id = $1", DEVICE)
        )
    finally:
        await conn.close()


async def wait_rows(url: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while await replica_rows(url) != count:
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.1)


def expected(points: list[Point], start: int, end: int) -> list[dict[str, object]]:
    return [{"time": iso(p.time_us), "value": p.value} for p in points if start <= p.time_us < end]


def served(body: dict[str, object]) -> list[dict[str, object]]:
    series = body["series"]
    assert isinstance(series, list)
    return [pt for s in series for pt in s["points"]]


async def test_reads_from_a_paused_replica_have_no_gap(
    plain_db: str, replica_url: str, redis_url: str
) -> None:
    now = time.time_ns() // 1000
    points = [
        Point(t, DEVICE, METRIC, float(i))
        for i, t in enumerate(range(now - 30 * MINUTE, now, 5 * S))
    ]
    old = [p for p in points if p.time_us < now - 20 * MINUTE]
    new = [p for p in points if p.time_us >= now - 20 * MINUTE]
    settings = Settings(
        database={"url": plain_db, "read_url": replica_url},
        redis={"url": redis_url, "window_s": WINDOW_S},
    )
    async with TimescaleSink(DatabaseSettings(url=plain_db)) as db, Api(settings) as api:
        await db.write(Batch(points=old, sites={DEVICE: "s1"}))
        await wait_rows(replica_url, len(old))
        pause = await asyncpg.connect(replica_url)
        await pause.execute("SELECT pg_wal_replay_pause()")
        try:
            await db.write(Batch(points=new, sites={DEVICE: "s1"}))
            async with CacheWriter(redis_url, window_s=WINDOW_S, future_skew_s=0) as cache:
                await cache.write([p for p in new if p.time_us >= now - WINDOW_S * S], now)
            await set_marker(redis_url, now - 10 * MINUTE)
            assert await replica_rows(replica_url) == len(old)  # it lacks the newer rows

            start, end = iso(now - 30 * MINUTE), iso(now + S)
            body, headers = await api.telemetry(
                DEVICE, metrics=[METRIC], start=start, end=end, step="raw"
            )
            assert headers == {"X-Cache": "hit", "X-Database": "primary"}
            assert served(body) == expected(points, now - 30 * MINUTE, now + S)

        finally:
            await pause.execute("SELECT pg_wal_replay_resume()")
            await pause.close()
        await wait_rows(replica_url, len(points))
        # Now the replica serves, as soon as it has replayed all the primary had
        # written when the read began. The primary writes WAL of its own now and
        # then (autovacuum, checkpoints, other tests' databases), and on a busy
        # machine replay can trail it by more than the gate's 50 ms: then the
        # primary serves that read, with the same answer. So: every answer is
        # checked, and the replica must serve one within the deadline.
        deadline = time.monotonic() + 30
        databases = []
        while "replica" not in databases:
            assert time.monotonic() < deadline, f"the replica never served: {databases}"
            body, headers = await api.telemetry(
                DEVICE, metrics=[METRIC], start=iso(now - 30 * MINUTE), end=iso(now + S), step="raw"
            )
            assert headers["X-Cache"] == "hit"
            assert served(body) == expected(points, now - 30 * MINUTE, now + S)
            databases.append(headers["X-Database"])
            await asyncio.sleep(0.05)


async def test_doctor_reports_the_paused_replica(plain_db: str, replica_url: str) -> None:
    from bridge.doctor.finding import Status
    from bridge.doctor.options import Options
    from bridge.doctor.run import doctor

    settings = Settings(database={"url": plain_db, "read_url": replica_url})
    pause = await asyncpg.connect(replica_url)
    await pause.execute("SELECT pg_wal_replay_pause()")
    try:
        report = await doctor(settings, Options(replica_url=replica_url))
    finally:
        await pause.execute("SELECT pg_wal_replay_resume()")
        await pause.close()
    problems = [f for f in report.by_check("replica lag") if f.status is Status.PROBLEM]
    assert any("paused" in f.summary and "pg_wal_replay_resume" in f.fix for f in problems)
    assert any(
        f.status is Status.OK for f in report.by_check("replica lag")
    )  # seen from the primary
