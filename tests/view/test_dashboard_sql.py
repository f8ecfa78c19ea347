"""Every SQL query of every Grafana dashboard, expanded as Grafana expands it
(tests/view/grafana.py), against the real schema in both modes, on a dataset
committed through the bridge's own database sink: each returns rows, for
short and long ranges, with the datasource's TimescaleDB flag on (as
provisioned) and off; and long ranges read the rollups, not raw rows.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from bridge.batch import Batch
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from core.types import DeadLetter, Point
from tests.view.grafana import Variable, dashboards, datasource_uid, expand, panels

S = 1_000_000
SITES = {"pump-01": "site-a", "pump-02": "site-a", "pump-03": "site-b", "meter-9": None}
QUIET = "pump-03"  # went quiet a day ago: offline, with history only
METRICS = ("flow_rate", "pip", "temperature")
RANGES = {
    "15 minutes": dt.timedelta(minutes=15),
    "6 hours": dt.timedelta(hours=6),
    "3 days": dt.timedelta(days=3),
    "30 days": dt.timedelta(days=30),
}
SQL_DATASOURCE = "bridge-db"
TELEMETRY = {"telemetry", "telemetry_1m", "telemetry_1h"}


@dataclass
class Seeded:
    conn: asyncpg.Connection
    mode: str
    now: dt.datetime


async def _seed(db_url: str, now_us: int) -> None:
    """35 days every 10 minutes, the last 6 hours every 10 seconds, and dead
    letters of three reasons, committed by the bridge's sink."""
    rnd = random.Random(3)
    recent = now_us - 6 * 3600 * S
    times = [*range(now_us - 35 * 86400 * S, recent, 600 * S), *range(recent, now_us - S, 10 * S)]
    points = [
        Point(t, device, metric, round(rnd.uniform(0, 100), 2))
        for t in times
        for device in SITES
        for metric in METRICS
        if not (device == QUIET and t > now_us - 86400 * S)
    ]
    letters = [
        DeadLetter(
            now_us - ago_s * S, f"telemetry/site-a/pump-0{i % 2 + 1}", reason, "seeded", b"x", 1
        )
        for i, (ago_s, reason) in enumerate(
            [
                (120, "malformed_json"),
                (300, "device_mismatch"),
                (400, "malformed_json"),
                (2 * 86400, "bad_value"),
                (20 * 86400, "malformed_json"),
            ]
        )
    ]
    async with TimescaleSink(DatabaseSettings(url=db_url)) as sink:
        for i in range(0, len(points), 5000):
            await sink.write(Batch(points=points[i : i + 5000], sites=dict(SITES)))
        await sink.write(Batch(dead_letters=letters))


@pytest.fixture
async def seeded(any_db: str) -> AsyncIterator[Seeded]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await _seed(any_db, int(now.timestamp()) * S)
    conn = await asyncpg.connect(any_db)
    try:
        mode = await conn.fetchval("SELECT mode FROM bridge_schema_migrations LIMIT 1")
        if mode == "timescaledb":
            for view in ("telemetry_1m", "telemetry_1h"):
                await conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        else:
            await conn.execute("SELECT bridge_refresh_rollups()")
        await _alarms(conn)
        # The registry stamps last_seen with the commit time; this device's
        # last point is a day old.
        await conn.execute(
            "UPDATE devices SET last_seen = now() - INTERVAL '1 day' WHERE device_id = $1", QUIET
        )
        yield Seeded(conn, mode, now)
    finally:
        await conn.close()


async def _alarms(conn: asyncpg.Connection) -> None:
    """Alarms as `bridge alarms run` writes them: one open for 10 minutes, one
    resolved two days ago, one twenty days ago."""
    rule_id = await conn.fetchval(
        "INSERT INTO alarm_rules (name, spec) VALUES ('seeded-hot', '{}') RETURNING id"
    )
    for device, started, ended in [
        ("meter-9", dt.timedelta(minutes=10), None),
        ("pump-01", dt.timedelta(days=2), dt.timedelta(days=2, hours=-1)),
        ("pump-03", dt.timedelta(days=20), dt.timedelta(days=19)),
    ]:
        await conn.execute(
            "INSERT INTO alerts (device_id, metric, severity, status, created_at, resolved_at, "
            "details, rule_id, site_id, peak_value, trigger_value) "
            "VALUES ($1, 'temperature', 'critical', $2, now() - $3::interval, "
            'now() - $4::interval, \'{"rule": "seeded-hot"}\', $5, $6, 120.5, 101.0)',
            device,
            "active" if ended is None else "resolved",
            started,
            ended,
            rule_id,
            SITES[device],
        )


async def _variables(
    s: Seeded, dashboard: dict[str, Any], start: dt.datetime, timescaledb: bool
) -> dict[str, Variable]:
    """Each variable's query run in order, as Grafana refreshes them: All
    selected where it is allowed, else the first value."""
    resolved: dict[str, Variable] = {}
    for var in dashboard["templating"]["list"]:
        assert var["type"] == "query"
        assert datasource_uid(var["datasource"]) == SQL_DATASOURCE
        sql = expand(
            var["query"], start=start, end=s.now, variables=resolved, timescaledb=timescaledb
        )
        values = [str(r[0]) for r in await s.conn.fetch(sql)]
        assert values, f"variable {var['name']} has no values:\n{sql}"
        multi, all_ = bool(var.get("multi")), bool(var.get("includeAll"))
        chosen = tuple(values) if all_ else (values[0],)
        resolved[var["name"]] = Variable(var["name"], chosen, multi, all_)
    return resolved


def _sql_targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource")
            if datasource_uid(ds) == SQL_DATASOURCE:
                out.append((panel, target))
    return out


def _expansions(
    panel: dict[str, Any], target: dict[str, Any], variables: dict[str, Variable], **kw: Any
) -> list[str]:
    """The SQL of each copy Grafana draws of the panel: one per value of its
    repeat variable, which then holds that value alone."""
    repeat = panel.get("repeat")
    copies = [variables]
    if repeat:
        var = variables[repeat]
        copies = [
            variables | {repeat: Variable(repeat, (v,), var.multi, var.include_all)}
            for v in var.values
        ]
    return [expand(target["rawSql"], variables=v, **kw) for v in copies]


SQL_DASHBOARDS = {name: doc for name, doc in dashboards().items() if _sql_targets(doc)}


def test_the_sql_dashboards_are_found() -> None:
    assert set(SQL_DASHBOARDS) == {"fleet-overview.json", "device-detail.json"}


@pytest.mark.parametrize("timescaledb_flag", [True, False], ids=["flag-on", "flag-off"])
async def test_every_query_returns_rows(seeded: Seeded, timescaledb_flag: bool) -> None:
    for name, dashboard in SQL_DASHBOARDS.items():
        for label, span in RANGES.items():
            start = seeded.now - span
            variables = await _variables(seeded, dashboard, start, timescaledb_flag)
            for panel, target in _sql_targets(dashboard):
                for sql in _expansions(
                    panel,
                    target,
                    variables,
                    start=start,
                    end=seeded.now,
                    timescaledb=timescaledb_flag,
                ):
                    assert "$" not in sql.replace("$1", ""), f"unexpanded in {name}:\n{sql}"
                    rows = await seeded.conn.fetch(sql)
                    assert rows, f"{name} / {panel['title']} over {label} returned no rows:\n{sql}"


async def _tables_read(conn: asyncpg.Connection, sql: str) -> set[str]:
    """The tables whose scans actually ran, chunks and partitions named by
    their table, TimescaleDB's materializations by their continuous aggregate."""
    plan = orjson.loads(await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql))
    scanned: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node and node.get("Actual Loops", 0) > 0:
            scanned.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    parents = dict(
        await conn.fetch(
            "SELECT c.relname, p.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        )
    )
    views: dict[str, str] = {}
    if await conn.fetchval("SELECT to_regclass('timescaledb_information.continuous_aggregates')"):
        views = dict(
            await conn.fetch(
                "SELECT materialization_hypertable_name, view_name "
                "FROM timescaledb_information.continuous_aggregates"
            )
        )
    return {views.get(parents.get(n, n), parents.get(n, n)) for n in scanned}


async def test_long_ranges_read_the_rollups(seeded: Seeded) -> None:
    """Each time-series query picks its source by the range: raw rows for
    short ranges, telemetry_1m up to 7 days, telemetry_1h beyond. (TimescaleDB's
    real-time aggregates add the raw rows not yet materialized.)"""
    expected = {"15 minutes": "telemetry", "3 days": "telemetry_1m", "30 days": "telemetry_1h"}
    checked = 0
    for dashboard in SQL_DASHBOARDS.values():
        for panel, target in _sql_targets(dashboard):
            if "telemetry_1h" not in target["rawSql"]:
                continue
            for label, source in expected.items():
                start = seeded.now - RANGES[label]
                variables = await _variables(seeded, dashboard, start, True)
                sql = _expansions(
                    panel, target, variables, start=start, end=seeded.now, timescaledb=True
                )[0]
                read = await _tables_read(seeded.conn, sql) & TELEMETRY
                rollups = read & {"telemetry_1m", "telemetry_1h"}
                if source == "telemetry":
                    assert read == {"telemetry"}, (panel["title"], label, read)
                else:
                    assert rollups == {source}, (panel["title"], label, read)
                    if seeded.mode == "plain":
                        assert read == {source}, (panel["title"], label, read)
                checked += 1
    assert checked >= 3 * 3  # points/s, top talkers, the device's series


def test_provisioning_points_at_the_dashboards_datasources() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2] / "dashboards" / "provisioning"
    (ds_file,) = (root / "datasources").glob("*.yaml")
    sources = {d["uid"]: d for d in yaml.safe_load(ds_file.read_text())["datasources"]}
    assert sources["bridge-db"]["type"] == "grafana-postgresql-datasource"
    assert sources["bridge-db"]["jsonData"]["timescaledb"] is True
    assert sources["bridge-prometheus"]["type"] == "prometheus"
    (provider_file,) = (root / "dashboards").glob("*.yaml")
    assert yaml.safe_load(provider_file.read_text())["providers"][0]["type"] == "file"
    for name, dashboard in dashboards().items():
        used = {
            datasource_uid(t.get("datasource") or p["datasource"])
            for p in panels(dashboard)
            for t in p.get("targets", [])
        }
        used |= {datasource_uid(v["datasource"]) for v in dashboard["templating"]["list"]}
        assert used <= set(sources), (name, used)
        assert dashboard["uid"]
        assert dashboard["title"]


@pytest.mark.parametrize("timescaledb_flag", [True, False], ids=["flag-on", "flag-off"])
async def test_the_alarm_annotations_return_the_devices_alarms(
    seeded: Seeded, timescaledb_flag: bool
) -> None:
    dashboard = SQL_DASHBOARDS["device-detail.json"]
    (annotation,) = dashboard["annotations"]["list"]
    assert datasource_uid(annotation["datasource"]) == SQL_DATASOURCE
    for label, span in RANGES.items():
        start = seeded.now - span
        variables = await _variables(seeded, dashboard, start, timescaledb_flag)
        sql = expand(
            annotation["target"]["rawSql"],
            start=start,
            end=seeded.now,
            variables=variables,
            timescaledb=timescaledb_flag,
        )
        rows = await seeded.conn.fetch(sql)
        assert rows, f"no annotation over {label}:\n{sql}"
        assert {"time", "timeend", "text", "tags"} <= set(rows[0].keys())
        assert variables["device"].values == ("meter-9",)
        assert rows[0]["text"].startswith("critical seeded-hot on temperature (active")
