"""The plain-PostgreSQL schema: uniqueness, day partitions, maintenance, rollups."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import DatabaseSettings
from bridge.db.maintain import maintain, utc_today
from tests.db.rollups import assert_rollups_match_raw

UTC = dt.UTC


async def partitions(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'telemetry'::regclass ORDER BY 1"
    )
    return [r["relname"] for r in rows]


def part(day: dt.date) -> str:
    return f"telemetry_p{day:%Y%m%d}"


async def test_duplicate_device_metric_time_is_rejected(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        at = dt.datetime.now(UTC)
        await conn.execute("INSERT INTO telemetry VALUES ($1, 'pump-1', 'flow_rate', 1.0)", at)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO telemetry VALUES ($1, 'pump-1', 'flow_rate', 2.0)", at)
        status = await conn.execute(
            "INSERT INTO telemetry VALUES ($1, 'pump-1', 'flow_rate', 3.0) ON CONFLICT DO NOTHING",
            at,
        )
        assert status == "INSERT 0 0"
        # Same time, other metric or device: distinct points.
        await conn.execute("INSERT INTO telemetry VALUES ($1, 'pump-1', 'pip', 1.0)", at)
        await conn.execute("INSERT INTO telemetry VALUES ($1, 'pump-2', 'flow_rate', 1.0)", at)
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 3
        assert (
            await conn.fetchval(
                "SELECT value FROM telemetry WHERE metric = 'flow_rate' AND device_id = 'pump-1'"
            )
            == 1.0
        )
    finally:
        await conn.close()


async def test_day_partitions_exist_around_today(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        names = await partitions(conn)
        today = utc_today()
        for offset in range(-1, 8):
            assert part(today + dt.timedelta(days=offset)) in names
        assert "telemetry_default" in names
        # A point written now lands in today's partition, not the default one.
        await conn.execute("INSERT INTO telemetry VALUES (now(), 'd', 'm', 1)")
        assert await conn.fetchval(f"SELECT count(*) FROM {part(today)}") == 1
        assert await conn.fetchval("SELECT count(*) FROM telemetry_default") == 0
    finally:
        await conn.close()


async def test_maintenance_drops_past_retention_and_creates_ahead(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        today = utc_today()
        first_day = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(12), UTC)
        await conn.execute("INSERT INTO telemetry VALUES ($1, 'd', 'm', 1)", first_day)
        later = today + dt.timedelta(days=30)
        settings = DatabaseSettings(retention_days=10, partitions_ahead_days=3)
        report = await maintain(conn, settings, today=later)

        names = await partitions(conn)
        cutoff = later - dt.timedelta(days=10)
        # Every partition that ended on or before the cutoff is gone, with its rows.
        assert report.partitions_dropped == 9
        assert all(n == "telemetry_default" or n >= part(cutoff) for n in names)
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 0
        # And the days around the new "today" exist.
        for offset in range(-1, 4):
            assert part(later + dt.timedelta(days=offset)) in names
        assert set(report.partitions_created) == {
            part(later + dt.timedelta(days=o)) for o in range(-1, 4)
        }
        again = await maintain(conn, settings, today=later)
        assert again.partitions_created == []
        assert again.partitions_dropped == 0
    finally:
        await conn.close()


async def test_rows_for_a_day_without_partition_wait_and_move_in(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        old_day = utc_today() - dt.timedelta(days=20)
        at = dt.datetime.combine(old_day, dt.time(6), UTC)
        rows = [(at + dt.timedelta(seconds=i), "d", "m", float(i)) for i in range(50)]
        await conn.copy_records_to_table("telemetry", records=rows)
        assert await conn.fetchval("SELECT count(*) FROM telemetry_default") == 50
        report = await maintain(conn, DatabaseSettings())
        assert part(old_day) in report.partitions_created
        assert await conn.fetchval("SELECT count(*) FROM telemetry_default") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {part(old_day)}") == 50
        assert await conn.fetchval("SELECT sum(value) FROM telemetry") == sum(range(50))
    finally:
        await conn.close()


async def test_old_dead_letters_are_deleted_by_maintenance(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute(
            "INSERT INTO rejected_messages (received_at, topic, reason, payload, payload_size) "
            "VALUES (now() - interval '100 days', 't', 'old', 'x', 1), (now(), 't', 'new', 'x', 1)"
        )
        report = await maintain(conn, DatabaseSettings(retention_days=90))
        assert report.rejected_deleted == 1
        assert await conn.fetchval("SELECT reason FROM rejected_messages") == "new"
    finally:
        await conn.close()


async def test_old_text_values_are_deleted_by_maintenance(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute(
            "INSERT INTO telemetry_text (time, device_id, metric, text) VALUES "
            "(now() - interval '100 days', 'd', 'state', 'old'), (now(), 'd', 'state', 'new')"
        )
        report = await maintain(conn, DatabaseSettings(retention_days=90))
        assert report.texts_deleted == 1
        assert await conn.fetchval("SELECT text FROM telemetry_text") == "new"
    finally:
        await conn.close()


async def test_dead_letter_payload_is_bounded(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO rejected_messages (topic, reason, payload, payload_size) "
                "VALUES ('t', 'too_big', $1, 9000)",
                b"x" * 9000,
            )
    finally:
        await conn.close()


# Points within a few hours across a day boundary, so buckets collide and
# partitions differ. Recent (two days ago): TimescaleDB's retention and
# compression jobs run in the background and would drop or compress older data.
BASE = dt.datetime.combine(utc_today() - dt.timedelta(days=2), dt.time(22), UTC)
points = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4 * 3600 * 1000),  # ms after BASE
        st.sampled_from(["pump-1", "pump-2", "plc-7"]),
        st.sampled_from(["flow_rate", "pip"]),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=200,
)


def _records(batch: list[tuple[int, str, str, float]]) -> list[tuple[object, ...]]:
    return [(BASE + dt.timedelta(milliseconds=ms), d, m, v) for ms, d, m, v in batch]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=points, second=points)
def test_rollups_equal_group_by_over_raw_rows(plain_db: str, first: list, second: list) -> None:
    async def check() -> None:
        conn = await asyncpg.connect(plain_db)
        try:
            await conn.execute(
                "TRUNCATE telemetry, telemetry_1m, telemetry_1h, telemetry_rollup_pending"
            )
            for day in (BASE.date(), BASE.date() + dt.timedelta(days=1)):
                await conn.fetchval("SELECT bridge_create_partition($1)", day)
            # Two rounds with a refresh between: the second must update buckets
            # the first already filled (incremental refresh), duplicates ignored.
            for batch in (first, second):
                await conn.executemany(
                    "INSERT INTO telemetry VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    _records(batch),
                )
                await conn.fetchval("SELECT bridge_refresh_rollups()")
            await assert_rollups_match_raw(conn)
        finally:
            await conn.close()

    asyncio.run(check())
