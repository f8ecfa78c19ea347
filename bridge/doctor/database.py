"""The doctor's database checks: pool use, slow queries, replica lag,
TimescaleDB jobs, chunks and partitions, and the database's clock.

Every query is in sql/ beside this module. Each check takes an open
connection and returns findings; none writes anything.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import asyncpg

from bridge.config import Settings
from bridge.doctor.finding import Finding, Status, bad, ok
from bridge.doctor.options import Options

SQL = Path(__file__).resolve().parent / "sql"
BUSY_SHARE = 0.8  # of the usable connections: above this, the server is nearly full


def sql(name: str) -> str:
    return (SQL / f"{name}.sql").read_text()


async def extension(conn: asyncpg.Connection, name: str) -> str | None:
    """The installed version of extension ``name`` in this database, or None."""
    version: str | None = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = $1", name
    )
    return version


async def check_pool_use(conn: asyncpg.Connection, s: Settings, o: Options) -> list[Finding]:
    limits = await conn.fetchrow(sql("limits"))
    usable = limits["max_connections"] - limits["reserved"]
    groups = await conn.fetch(sql("connections"))
    total = sum(g["total"] for g in groups)
    waiting = sum(g["waiting_on_locks"] for g in groups)
    wanted = s.database.pool_size * o.bridge_workers + s.api.db_pool_size * o.api_replicas
    data = {"connections": total, "usable": usable, "pools_may_open": wanted, "waiting": waiting}
    out: list[Finding] = []
    if wanted > usable:
        out.append(
            bad(
                "pool use",
                Status.PROBLEM,
                f"the pools may open {wanted} connections ({o.bridge_workers} bridge workers x "
                f"database.pool_size {s.database.pool_size} + {o.api_replicas} API replicas x "
                f"api.db_pool_size {s.api.db_pool_size}), but the server allows {usable}",
                "raise max_connections on the server, lower the pool sizes, or put PgBouncer "
                "(transaction mode) between the API replicas and the database",
                **data,
            )
        )
    if total > BUSY_SHARE * usable:
        out.append(
            bad(
                "pool use",
                Status.PROBLEM,
                f"{total} of {usable} usable connections are open",
                "find who holds them (SELECT usename, application_name, state FROM "
                "pg_stat_activity) and lower their pools, or raise max_connections",
                **data,
            )
        )
    if waiting:
        out.append(
            bad(
                "pool use",
                Status.WARN,
                f"{waiting} connection(s) wait on a lock, holding their pool's slot meanwhile",
                "see the long-running statements below for the holder; a schema change or a "
                "manual transaction left open is the usual cause",
                **data,
            )
        )
    if not out:
        out.append(ok("pool use", f"{total} of {usable} connections open", **data))
    return out


async def check_slow_queries(conn: asyncpg.Connection, s: Settings, o: Options) -> list[Finding]:
    out: list[Finding] = []
    for r in await conn.fetch(sql("long_running"), o.slow_query_s):
        out.append(
            bad(
                "slow queries",
                Status.WARN,
                f"pid {r['pid']} ({r['usename']}, {r['application_name'] or 'no name'}) has been "
                f"{r['state']} for {r['seconds']:.0f} s: {r['query']}",
                f"if it should not run that long, SELECT pg_cancel_backend({r['pid']}); a "
                "transaction left open blocks vacuum and, holding locks, the bridge's commits",
                pid=r["pid"],
                seconds=r["seconds"],
            )
        )
    if await extension(conn, "pg_stat_statements") is None:
        out.append(
            bad(
                "slow queries",
                Status.SKIPPED,
                "pg_stat_statements is not installed: past statements' times are not known",
                "add pg_stat_statements to shared_preload_libraries, restart PostgreSQL, then "
                "CREATE EXTENSION pg_stat_statements in this database",
            )
        )
    else:
        for r in await conn.fetch(sql("statements"), o.slow_mean_ms):
            out.append(
                bad(
                    "slow queries",
                    Status.WARN,
                    f"{r['calls']} calls at {r['mean_ms']:.0f} ms on average: {r['query']}",
                    "EXPLAIN (ANALYZE, BUFFERS) it; a history read over a long range should "
                    "hit telemetry_1m or telemetry_1h (api.series_points)",
                    mean_ms=r["mean_ms"],
                )
            )
    if not out:
        out.append(ok("slow queries", f"nothing running longer than {o.slow_query_s:g} s"))
    return out


async def check_timescaledb_jobs(
    conn: asyncpg.Connection, s: Settings, o: Options
) -> list[Finding]:
    version = await extension(conn, "timescaledb")
    if version is None:
        return [
            bad(
                "timescaledb jobs",
                Status.SKIPPED,
                "not TimescaleDB: plain PostgreSQL has no background jobs; the rollups and "
                "partitions are kept by `bridge db maintain`",
                "nothing, as long as a bridge worker runs db maintain "
                "(database.maintain_interval_s) or cron does",
            )
        ]
    failed = await conn.fetch(sql("job_stats"))
    errors = await conn.fetch(sql("job_errors"))
    if not failed and not errors:
        return [ok("timescaledb jobs", f"TimescaleDB {version}: no job failed in the last day")]
    out = []
    for r in failed:
        on = f" on {r['hypertable_name']}" if r["hypertable_name"] else ""
        out.append(
            bad(
                "timescaledb jobs",
                Status.PROBLEM,
                f"job {r['job_id']} ({r['proc_name']}{on}) failed its last run "
                f"({r['total_failures']} failures; {_last_success(r['last_successful_finish'])})",
                "`bridge db maintain` refreshes the continuous aggregates itself meanwhile; read "
                "the error below, fix it, then CALL run_job(<job_id>)",
                job_id=r["job_id"],
            )
        )
    for r in errors:
        out.append(
            bad(
                "timescaledb jobs",
                Status.WARN,
                f"job {r['job_id']} ({r['proc_name']}) failed at {r['finish_time']}: "
                f"{r['err_message']} (SQLSTATE {r['sqlerrcode']})",
                "see the PostgreSQL log around that time; out of memory or a lock timeout on a "
                "refresh usually passes, a persistent error needs the job's definition fixed",
                job_id=r["job_id"],
            )
        )
    return out


def _last_success(finish: dt.datetime | None) -> str:
    if finish is None or finish.year < 2:  # TimescaleDB's "never" is -infinity
        return "never succeeded"
    return f"last success {finish:%Y-%m-%d %H:%M:%S} UTC"


async def check_replica_lag(conn: asyncpg.Connection, s: Settings, o: Options) -> list[Finding]:
    out: list[Finding] = []
    for r in await conn.fetch(sql("replication")):
        lagging = r["replay_lag_s"] > o.max_skew_s * 5
        summary = (
            f"replica {r['application_name'] or r['client']} ({r['state']}) replays "
            f"{r['replay_lag_s']:.1f} s, {r['behind_bytes'] / 1e6:.1f} MB behind"
        )
        if lagging:
            out.append(
                bad(
                    "replica lag",
                    Status.WARN,
                    summary,
                    "history reads from it miss the newest points the cache no longer holds; "
                    "check its disk and CPU, and long queries on it (hot_standby_feedback)",
                )
            )
        else:
            out.append(ok("replica lag", summary))
    if o.replica_url:
        replica = await asyncpg.connect(o.replica_url, timeout=o.timeout_s)
        try:
            r = await replica.fetchrow(sql("replica"))
        finally:
            await replica.close()
        if not r["in_recovery"]:
            out.append(
                bad(
                    "replica lag",
                    Status.PROBLEM,
                    "the replica is not in recovery: it is a primary, not a replica",
                    "point the replica URL at a streaming standby (pg_basebackup -R)",
                )
            )
        elif r["paused"]:
            out.append(
                bad(
                    "replica lag",
                    Status.PROBLEM,
                    "replay is paused on the replica",
                    "SELECT pg_wal_replay_resume() on the replica",
                )
            )
    if not out:
        out.append(
            bad(
                "replica lag",
                Status.SKIPPED,
                "no streaming replica is attached to this database",
                "nothing, unless you meant to have one: see pg_stat_replication on the primary",
            )
        )
    return out


_DAY = re.compile(r"^telemetry_p(\d{8})$")


async def check_partitions(conn: asyncpg.Connection, s: Settings, o: Options) -> list[Finding]:
    today = dt.datetime.now(dt.UTC).date()
    retention = dt.timedelta(days=s.database.retention_days)
    if await extension(conn, "timescaledb") is not None and await _is_hypertable(conn):
        r = await conn.fetchrow(sql("chunks"))
        data = {"chunks": r["chunks"], "compressed": r["compressed"]}
        if r["oldest"] is not None and r["oldest"].date() < today - retention - dt.timedelta(2):
            return [
                bad(
                    "chunks",
                    Status.WARN,
                    f"the oldest chunk starts {r['oldest']:%Y-%m-%d}, past the retention of "
                    f"{s.database.retention_days} days",
                    "the retention job is not running: see the TimescaleDB jobs above, then "
                    "`bridge db maintain` (it resets the policy)",
                    **data,
                )
            ]
        return [ok("chunks", f"{r['chunks']} chunks, {r['compressed']} compressed", **data)]
    r = await conn.fetchrow(sql("partitions"))
    days = [
        dt.datetime.strptime(m.group(1), "%Y%m%d").date() for m in map(_DAY.match, r["days"]) if m
    ]
    ahead = [today + dt.timedelta(days=n) for n in range(s.database.partitions_ahead_days)]
    missing = [d for d in ahead if d not in days]
    out: list[Finding] = []
    fix = "run `bridge db maintain` (a bridge worker does, every database.maintain_interval_s)"
    if missing:
        out.append(
            bad(
                "partitions",
                Status.WARN,
                f"no partition yet for {', '.join(f'{d:%Y-%m-%d}' for d in missing)}: their "
                "rows land in telemetry_default",
                fix,
            )
        )
    if r["default_rows"]:
        out.append(
            bad(
                "partitions",
                Status.WARN,
                f"{r['default_rows']} rows wait in telemetry_default",
                fix + "; it moves them into day partitions",
            )
        )
    if days and days[0] < today - retention - dt.timedelta(days=1):
        out.append(bad("partitions", Status.WARN, f"partition of {days[0]} is past retention", fix))
    if not out:
        out.append(ok("partitions", f"{len(days)} day partitions, none missing ahead"))
    return out


async def _is_hypertable(conn: asyncpg.Connection) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'telemetry')"
    )
    return found


async def database_clock_skew(conn: asyncpg.Connection) -> tuple[float, float]:
    """(database clock - this host's clock, uncertainty), in seconds."""
    before = time.time()
    theirs: float = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    after = time.time()
    return theirs - (before + after) / 2, (after - before) / 2


CHECKS = (
    check_pool_use,
    check_slow_queries,
    check_replica_lag,
    check_timescaledb_jobs,
    check_partitions,
)
