"""The TimescaleDB schema. Every test here skips, saying why, when the
extension is not installed and preloaded in the test PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings

from bridge.config import DatabaseSettings
from bridge.db.maintain import maintain
from bridge.db.status import schema_status
from tests.db.rollups import assert_rollups_match_raw
from tests.db.test_schema_plain import BASE, _records, points


async def _jobs(conn: asyncpg.Connection) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for r in await conn.fetch(
        "SELECT proc_name, hypertable_name, schedule_interval, config "
        "FROM timescaledb_information.jobs WHERE proc_name LIKE 'policy_%'"
    ):
        cfg = r["config"]
        out.setdefault(r["proc_name"], []).append(
            {
                "table": r["hypertable_name"],
                "every": r["schedule_interval"],
                **(json.loads(cfg) if isinstance(cfg, str) else dict(cfg or {})),
            }
        )
    return out


async def test_telemetry_is_a_hypertable_with_one_day_chunks(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        interval = await conn.fetchval(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'telemetry' AND column_name = 'time'"
        )
        assert interval == dt.timedelta(days=1)
        at = dt.datetime.now(dt.UTC)
        await conn.execute("INSERT INTO telemetry VALUES ($1, 'd', 'm', 1)", at)
        status = await conn.execute(
            "INSERT INTO telemetry VALUES ($1, 'd', 'm', 2) ON CONFLICT DO NOTHING", at
        )
        assert status == "INSERT 0 0"
        with __import__("pytest").raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO telemetry VALUES ($1, 'd', 'm', 3)", at)
    finally:
        await conn.close()


async def test_compression_segments_by_device_and_metric_with_a_7_day_policy(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        rows = await conn.fetch(
            "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
            "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'telemetry'"
        )
        segment = sorted(
            (r["segmentby_column_index"], r["attname"]) for r in rows if r["segmentby_column_index"]
        )
        order = [(r["attname"], r["orderby_asc"]) for r in rows if r["orderby_column_index"]]
        assert [name for _, name in segment] == ["device_id", "metric"]
        assert order == [("time", False)]
        [policy] = (await _jobs(conn))["policy_compression"]
        assert policy["compress_after"] == "7 days"
    finally:
        await conn.close()


async def test_continuous_aggregates_are_real_time_with_refresh_policies(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        caggs = {
            r["view_name"]: r
            for r in await conn.fetch(
                "SELECT view_name, materialized_only, materialization_hypertable_name "
                "FROM timescaledb_information.continuous_aggregates"
            )
        }
        assert set(caggs) == {"telemetry_1m", "telemetry_1h"}
        assert not any(c["materialized_only"] for c in caggs.values())
        # Jobs name the view, or (older releases) its materialization hypertable.
        by_mat = {c["materialization_hypertable_name"]: name for name, c in caggs.items()}
        jobs = (await _jobs(conn))["policy_refresh_continuous_aggregate"]
        assert {by_mat.get(j["table"], j["table"]) for j in jobs} == set(caggs)
    finally:
        await conn.close()


async def test_retention_policy_follows_the_config(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        policies = (await _jobs(conn))["policy_retention"]
        want = {("telemetry", "90 days"), ("telemetry_text", "90 days")}
        assert {(p["table"], p["drop_after"]) for p in policies} == want
        report = await maintain(conn, DatabaseSettings(retention_days=30))
        assert report.retention_policy_changed
        policies = (await _jobs(conn))["policy_retention"]
        want = {("telemetry", "30 days"), ("telemetry_text", "30 days")}
        assert {(p["table"], p["drop_after"]) for p in policies} == want
        assert not (
            await maintain(conn, DatabaseSettings(retention_days=30))
        ).retention_policy_changed
    finally:
        await conn.close()


async def test_status_names_the_version_and_features(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        status = await schema_status(conn, DatabaseSettings())
        assert status.mode == "timescaledb"
        assert status.timescaledb["installed"]
        text = "\n".join(status.lines())
        assert f"TimescaleDB {status.timescaledb['installed']}" in text
        for word in ("hypertable", "compression", "retention", "telemetry_1m", "telemetry_1h"):
            assert word in text
        # Durations read as a person writes them, not as Python prints timedeltas.
        assert "chunks of 1 day," in text
        assert "compress chunks older than 7 days" in text
        assert "drop chunks older than 90 days" in text
        assert "real-time, refreshed every 1 min from now - 3 days to now - 1 min" in text
        assert "0:" not in text
    finally:
        await conn.close()


async def test_real_time_aggregation_includes_rows_not_yet_materialized(tsdb_db: str) -> None:
    conn = await asyncpg.connect(tsdb_db)
    try:
        rows = _records([(i * 7_000, "pump-1", "flow_rate", float(i)) for i in range(500)])
        await conn.executemany("INSERT INTO telemetry VALUES ($1, $2, $3, $4)", rows)
        # No refresh has run: every bucket is computed from raw rows at query time.
        await assert_rollups_match_raw(conn)
    finally:
        await conn.close()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=points, second=points)
def test_aggregates_agree_with_raw_rows(tsdb_db: str, first: list, second: list) -> None:
    window = (BASE - dt.timedelta(days=1), BASE + dt.timedelta(days=1))

    async def refresh(conn: asyncpg.Connection) -> None:
        # Twice: TimescaleDB 2.28.3 now and then leaves one bucket's
        # invalidation in telemetry_1m's log after a refresh (seen here in
        # about one example in 30); the next refresh, as the 1-minute policy
        # does in production, materializes it.
        for view in ("telemetry_1m", "telemetry_1h") * 2:
            await conn.execute(
                "CALL refresh_continuous_aggregate($1, $2::timestamptz, $3::timestamptz)",
                view,
                *window,
            )

    async def check() -> None:
        conn = await asyncpg.connect(tsdb_db)
        try:
            # DELETE, not TRUNCATE: it records invalidations, so the refresh
            # clears what an earlier example materialized.
            await conn.execute("DELETE FROM telemetry")
            await refresh(conn)
            # Two rounds with a refresh between: the second updates buckets the
            # first materialized; duplicates are ignored.
            for batch in (first, second):
                await conn.executemany(
                    "INSERT INTO telemetry VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    _records(batch),
                )
                await refresh(conn)
            await assert_rollups_match_raw(conn)
        finally:
            await conn.close()

    asyncio.run(check())


async def test_maintain_refreshes_an_aggregate_whose_refresh_job_failed(tsdb_db: str) -> None:
    """telemetry_1m's refresh job fails in TimescaleDB's scheduler (a lock
    timeout while the raw table is locked, as under a long migration); then
    `bridge db maintain` refreshes the aggregate itself: its watermark moves
    past the new rows."""
    conn = await asyncpg.connect(tsdb_db)
    blocker = await asyncpg.connect(tsdb_db)
    try:
        rows = [(BASE + dt.timedelta(seconds=n), "pump-1", "pip", float(n)) for n in range(600)]
        await conn.copy_records_to_table(
            "telemetry", records=rows, columns=["time", "device_id", "metric", "value"]
        )
        job, mat = await conn.fetchrow(
            "SELECT j.job_id, c.materialization_hypertable_name FROM timescaledb_information.jobs j "
            "JOIN timescaledb_information.continuous_aggregates c "
            "ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name) "
            "WHERE c.view_name = 'telemetry_1m'"
        )
        watermark = (
            "SELECT _timescaledb_functions.cagg_watermark(id) FROM _timescaledb_catalog.hypertable "
            "WHERE table_name = $1"
        )
        before = await conn.fetchval(watermark, mat)
        db = tsdb_db.rsplit("/", 1)[1]
        await conn.execute(f"ALTER DATABASE \"{db}\" SET lock_timeout = '200ms'")
        await blocker.execute("BEGIN; LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")
        # The test template keeps its jobs paused; this one runs now, once. A
        # scheduler already running may sleep past the new next_start: restart
        # it, so it reads the job list afresh.
        await conn.execute("SELECT alter_job($1, scheduled => true, next_start => now())", job)
        await conn.execute("SELECT _timescaledb_functions.restart_background_workers()")
        for _ in range(900):
            status = await conn.fetchval(
                "SELECT last_run_status FROM timescaledb_information.job_stats WHERE job_id = $1",
                job,
            )
            if status == "Failed":
                break
            await asyncio.sleep(0.1)
        else:
            # A precondition of the test, not what it checks: TimescaleDB's
            # scheduler sometimes starts no job in a freshly cloned database
            # (seen in a clean-clone CI run, not understood).
            pytest.skip("TimescaleDB's scheduler did not run the refresh job within 90 s")
        await blocker.execute("ROLLBACK")
        await conn.execute(f'ALTER DATABASE "{db}" RESET lock_timeout')
        await conn.execute("SELECT alter_job($1, scheduled => false)", job)  # ours alone now
        report = await maintain(conn, DatabaseSettings(url=tsdb_db))
        # telemetry_1h's job may have run (and failed) in the same window.
        assert "telemetry_1m" in report.aggregates_refreshed, report.lines()
        assert set(report.aggregates_refreshed) <= {"telemetry_1m", "telemetry_1h"}
        assert any(
            line.startswith("refreshed after a failed refresh job: ") for line in report.lines()
        )
        after = await conn.fetchval(watermark, mat)
        assert after > before
        assert after >= int((BASE + dt.timedelta(seconds=540)).timestamp() * 1_000_000)
    finally:
        await blocker.close()
        await conn.close()
