"""What `bridge db status` reports: schema version, mode, and active features."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from bridge.config import DatabaseSettings
from bridge.db.migrate import choose_mode, discover, recorded, timescale_info
from bridge.errors import MigrationError


@dataclass
class SchemaStatus:
    server: str
    mode: str  # "timescaledb", "plain", or "none" before the first migration
    timescaledb: dict[str, Any]
    version: int  # highest applied migration, 0 for none
    applied: list[str]
    pending: list[str]
    features: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        ts = self.timescaledb
        if self.mode == "timescaledb":
            mode = f"TimescaleDB {ts['installed']}"
        elif self.mode == "plain":
            mode = "plain PostgreSQL (native partitions, rollup tables)"
        else:
            mode = "none yet"
        state = (
            "up to date"
            if not self.pending
            else f"{len(self.pending)} pending: " + ", ".join(self.pending)
        )
        out = [
            f"server:  {self.server}",
            f"schema:  version {self.version} ({state})",
            f"mode:    {mode}",
        ]
        if self.mode != "timescaledb" and ts["available"]:
            preload = "preloaded" if ts["preloaded"] else "NOT in shared_preload_libraries"
            out.append(f"note:    TimescaleDB {ts['available']} is on the server ({preload})")
        out += [f"  {name}: {value}" for name, value in self.features.items()]
        if self.pending:
            out.append("Run `bridge db migrate` to apply the pending migrations.")
        return out


async def schema_status(conn: asyncpg.Connection, settings: DatabaseSettings) -> SchemaStatus:
    applied = await recorded(conn)
    tsdb = await timescale_info(conn)
    server = await conn.fetchval("SELECT current_setting('server_version')")
    try:
        mode = choose_mode("auto" if applied else settings.mode, applied, tsdb)
    except MigrationError:
        mode = "plain"  # migrate will explain; here we only preview what is pending
    done = {a.version for a in applied}
    pending = [m.label for m in discover(settings.migrations_dir, mode) if m.version not in done]
    status = SchemaStatus(
        server=f"PostgreSQL {server}",
        mode=applied[0].mode if applied else "none",
        timescaledb={
            "installed": tsdb.installed,
            "available": tsdb.available,
            "preloaded": tsdb.preloaded,
        },
        version=max(done, default=0),
        applied=[f"{a.version:04d}_{a.name}" for a in applied],
        pending=pending,
    )
    if await conn.fetchval("SELECT to_regclass('telemetry') IS NOT NULL"):
        if status.mode == "timescaledb":
            status.features = await _timescale_features(conn)
        else:
            status.features = await _plain_features(conn, settings)
    return status


async def _timescale_features(conn: asyncpg.Connection) -> dict[str, str]:
    features: dict[str, str] = {}
    chunks = await conn.fetchval(
        "SELECT num_chunks FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'telemetry'"
    )
    interval = await conn.fetchval(
        "SELECT time_interval FROM timescaledb_information.dimensions "
        "WHERE hypertable_name = 'telemetry' AND column_name = 'time'"
    )
    features["hypertable"] = f"telemetry, chunks of {span(interval)}, {chunks} chunk(s)"
    jobs = await conn.fetch(
        "SELECT proc_name, hypertable_name, schedule_interval, "
        "(config->>'compress_after')::interval AS compress_after, "
        "(config->>'drop_after')::interval AS drop_after, "
        "(config->>'start_offset')::interval AS start_offset, "
        "(config->>'end_offset')::interval AS end_offset "
        "FROM timescaledb_information.jobs WHERE proc_name LIKE 'policy_%' ORDER BY job_id"
    )
    caggs = {
        r["view_name"]: r
        for r in await conn.fetch(
            "SELECT c.view_name, c.materialized_only, c.materialization_hypertable_name "
            "FROM timescaledb_information.continuous_aggregates c ORDER BY view_name"
        )
    }
    by_mat = {r["materialization_hypertable_name"]: name for name, r in caggs.items()}
    compressed = await conn.fetchval(
        "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'telemetry'"
    )
    features["compression"] = "off"
    features["retention"] = "off"
    for job in jobs:
        if job["proc_name"] == "policy_compression":
            features["compression"] = (
                f"policy: compress chunks older than {span(job['compress_after'])}, "
                f"{compressed} chunk(s) compressed"
            )
        elif job["proc_name"] == "policy_retention":
            features["retention"] = f"policy: drop chunks older than {span(job['drop_after'])}"
        elif job["proc_name"] == "policy_refresh_continuous_aggregate":
            view = by_mat.get(job["hypertable_name"], job["hypertable_name"])
            realtime = "materialized only" if caggs[view]["materialized_only"] else "real-time"
            start = job["start_offset"]
            since = "the first row" if start is None else f"now - {span(start)}"
            features[f"continuous aggregate {view}"] = (
                f"{realtime}, refreshed every {span(job['schedule_interval'])} "
                f"from {since} to now - {span(job['end_offset'])}"
            )
    return features


def span(value: dt.timedelta | None) -> str:
    """A duration as a person writes it: '1 day', '15 min', '2 days 6 h'."""
    if value is None:
        return "0 s"
    rest = int(value.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            plural = "s" if unit == "day" and count != 1 else ""
            parts.append(f"{count} {unit}{plural}")
    return " ".join(parts) or "0 s"


async def _plain_features(conn: asyncpg.Connection, settings: DatabaseSettings) -> dict[str, str]:
    parts = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_p[0-9]{8}$' "
        "ORDER BY c.relname"
    )
    names = [r["relname"] for r in parts]
    days = [dt.datetime.strptime(n[11:], "%Y%m%d").date() for n in names]
    covered = f"{days[0]} .. {days[-1]}" if days else "none"
    waiting = await conn.fetchval("SELECT count(*) FROM telemetry_default")
    pending = await conn.fetchval("SELECT count(*) FROM telemetry_rollup_pending")
    return {
        "partitions": f"{len(names)} day partition(s), {covered}; "
        f"{waiting} row(s) in the default partition",
        "rollups": f"telemetry_1m, telemetry_1h tables; {pending} pending range(s) "
        "(refreshed by `bridge db maintain`)",
        "retention": f"{settings.retention_days} days, applied by `bridge db maintain`",
    }
