"""Periodic upkeep, safe to run at any time and from several places at once.

Plain PostgreSQL: day partitions ahead of today, partitions for rows waiting
in the default partition, dropping partitions past retention, refreshing the
rollups. TimescaleDB: its own background jobs do that work; we keep the
retention policy equal to the configured retention and, when a continuous
aggregate's refresh job failed its last run, refresh that aggregate over the
policy's window ourselves (the project's own builds saw those jobs fail).
The text hypertable (telemetry_text) keeps telemetry's retention: its policy
in TimescaleDB, a DELETE past the cutoff on plain PostgreSQL.
Both modes: dead letters past retention are deleted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

import asyncpg

from bridge.config import DatabaseSettings
from bridge.db.connect import connect
from bridge.db.migrate import SCHEMA_LOCK_KEY, recorded
from bridge.errors import BridgeError, MigrationError

log = logging.getLogger("bridge.db.maintain")

HYPERTABLES = ("telemetry", "telemetry_text")  # each with a retention policy


@dataclass
class MaintenanceReport:
    mode: str
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: int = 0
    rollup_hours_refreshed: int = 0
    texts_deleted: int = 0  # plain PostgreSQL: text rows past retention
    rejected_deleted: int = 0
    retention_policy_changed: bool = False
    aggregates_refreshed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"mode: {self.mode}"]
        if self.mode == "plain":
            created = ", ".join(self.partitions_created) or "none"
            out += [
                f"partitions created: {created}",
                f"partitions dropped past retention: {self.partitions_dropped}",
                f"rollup hours refreshed: {self.rollup_hours_refreshed}",
                f"text values deleted past retention: {self.texts_deleted}",
            ]
        else:
            changed = "updated" if self.retention_policy_changed else "unchanged"
            out.append(f"retention policy: {changed}")
            if self.aggregates_refreshed:
                names = ", ".join(self.aggregates_refreshed)
                out.append(f"refreshed after a failed refresh job: {names}")
        out.append(f"dead letters deleted past retention: {self.rejected_deleted}")
        return out


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def database_mode(conn: asyncpg.Connection) -> str:
    applied = await recorded(conn)
    if not applied:
        raise MigrationError("the database has no schema yet; run `bridge db migrate` first")
    return applied[0].mode


async def maintain(
    conn: asyncpg.Connection, settings: DatabaseSettings, today: dt.date | None = None
) -> MaintenanceReport:
    """Runs one round of upkeep. ``today`` (UTC) is a parameter for tests."""
    today = today or utc_today()
    cutoff = today - dt.timedelta(days=settings.retention_days)
    await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_KEY)
    try:
        report = MaintenanceReport(mode=await database_mode(conn))
        if report.mode == "plain":
            await _partitions(conn, settings, today, cutoff, report)
            report.rollup_hours_refreshed = await conn.fetchval("SELECT bridge_refresh_rollups()")
        else:
            report.retention_policy_changed = await _retention_policy(conn, settings.retention_days)
            report.aggregates_refreshed = await _refresh_failed_aggregates(conn)
        cutoff_at = dt.datetime.combine(cutoff, dt.time(), dt.UTC)
        if report.mode == "plain":
            status = await conn.execute("DELETE FROM telemetry_text WHERE time < $1", cutoff_at)
            report.texts_deleted = int(status.split()[-1])
        status = await conn.execute(
            "DELETE FROM rejected_messages WHERE received_at < $1", cutoff_at
        )
        report.rejected_deleted = int(status.split()[-1])
        return report
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK_KEY)


async def maintain_every(settings: DatabaseSettings) -> None:
    """A round of upkeep every ``maintain_interval_s``, until cancelled (one
    worker runs it). A round that fails is logged; the next one tries again."""
    while True:
        try:
            conn = await connect(settings)
            try:
                report = await maintain(conn, settings)
                if report.partitions_created or report.partitions_dropped:
                    log.info("maintenance: %s", "; ".join(report.lines()))
            finally:
                await conn.close()
        except (BridgeError, OSError) as exc:
            log.warning("maintenance skipped: %s", exc)
        except Exception as exc:
            log.warning("maintenance failed: %s", exc)
        await asyncio.sleep(settings.maintain_interval_s)


async def _partitions(
    conn: asyncpg.Connection,
    settings: DatabaseSettings,
    today: dt.date,
    cutoff: dt.date,
    report: MaintenanceReport,
) -> None:
    days = {today + dt.timedelta(days=n) for n in range(-1, settings.partitions_ahead_days + 1)}
    # Rows that arrived for a day without a partition wait in the default one.
    stragglers = await conn.fetch(
        "SELECT DISTINCT (time AT TIME ZONE 'UTC')::date AS day FROM telemetry_default "
        "WHERE time >= $1",
        dt.datetime.combine(cutoff, dt.time(), dt.UTC),
    )
    days.update(r["day"] for r in stragglers)
    for day in sorted(days):
        if await conn.fetchval("SELECT bridge_create_partition($1)", day):
            report.partitions_created.append(f"telemetry_p{day:%Y%m%d}")
    report.partitions_dropped = await conn.fetchval(
        "SELECT bridge_drop_partitions_before($1)", cutoff
    )


async def _retention_policy(conn: asyncpg.Connection, days: int) -> bool:
    """Makes the hypertables' retention policies (telemetry, telemetry_text)
    drop after ``days``; True if one changed."""
    changed = False
    wanted = dt.timedelta(days=days)
    for table in HYPERTABLES:
        current = await conn.fetchval(
            "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = $1",
            table,
        )
        if current == wanted:
            continue
        async with conn.transaction():
            await conn.execute(
                "SELECT remove_retention_policy($1::regclass, if_exists => true)", table
            )
            await conn.execute(
                "SELECT add_retention_policy($1::regclass, drop_after => $2::interval)",
                table,
                wanted,
            )
        changed = True
    return changed


async def _refresh_failed_aggregates(conn: asyncpg.Connection) -> list[str]:
    """Refreshes each continuous aggregate whose refresh job failed its last
    run, over that job's own window (start_offset .. end_offset before now)."""
    failed = await conn.fetch(
        # A job names the view or, in older releases, its materialization table.
        "SELECT DISTINCT ON (c.view_name) c.view_name AS view, "
        "format('%I.%I', c.view_schema, c.view_name) AS regclass, "
        "(j.config->>'start_offset')::interval AS start_offset, "
        "(j.config->>'end_offset')::interval AS end_offset "
        "FROM timescaledb_information.jobs j "
        "JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id "
        "JOIN timescaledb_information.continuous_aggregates c "
        "ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name) "
        "WHERE j.proc_name = 'policy_refresh_continuous_aggregate' "
        "AND s.last_run_status = 'Failed'"
    )
    done = []
    for row in failed:
        # CALL refresh_continuous_aggregate cannot run in a transaction block;
        # asyncpg's execute without one runs it on its own.
        await conn.execute(
            "CALL refresh_continuous_aggregate($1::regclass, now() - $2::interval, "
            "now() - $3::interval)",
            row["regclass"],
            row["start_offset"],
            row["end_offset"],
        )
        done.append(row["view"])
    return done
