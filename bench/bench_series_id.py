"""A schema lever, measured and not adopted: an integer series id instead of
text device_id/metric columns in telemetry.

    text (today):  telemetry(time, device_id text, metric text, value)
                   UNIQUE (device_id, metric, time)
    series id:     series(id integer, device_id, metric) UNIQUE (device_id, metric)
                   telemetry_sid(series_id integer, time, value)
                   UNIQUE (series_id, time)

Both are written idempotently the way the sink writes today: per 1,000-row
batch, one transaction, binary COPY into a temporary staging table, then
INSERT ... SELECT ... ON CONFLICT DO NOTHING. The series-id writer keeps a
client-side map (device_id, metric) -> id, as a bridge worker would, and
resolves the pairs it has not seen with one INSERT ... ON CONFLICT DO NOTHING
and one SELECT per batch that has any. Before the timed rows, one reading of
every series is written untimed, an hour earlier (into both schemas), so the
figures are the steady state, every id known; a series' first sighting costs
its row in `series` and a round trip more, once. Same rows, same private PostgreSQL
(TimescaleDB hypertables when the server has it), alternating runs into
emptied tables, at two cardinalities. Per run: rows/s of the writer (two
connections, as the bridge's default pool), PostgreSQL CPU per row, and the
bytes per row of the table with its indexes.

    .venv/bin/python bench/bench_series_id.py [--quick]

Ports 35512 (PostgreSQL), 36419 (Redis, unused), 31913 (Mosquitto, unused).
Writes bench/results/series_id.json (--quick: series_id-quick.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from services import CpuMeter, Ports, Services, machine_info, wait_quiet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PORTS = Ports(35512, 36419, 31913)
CARDINALITIES = (1_000, 100_000)  # devices, x 3 metrics
ROWS, QUICK_ROWS = 900_000, 150_000
BATCH = 1000
METRICS = ("flow_rate", "pip", "temperature")

SERIES_SCHEMA = """
CREATE TABLE series (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id text NOT NULL,
    metric    text NOT NULL,
    UNIQUE (device_id, metric)
);
CREATE TABLE telemetry_sid (
    time      timestamptz      NOT NULL,
    series_id integer          NOT NULL,
    value     double precision NOT NULL,
    CONSTRAINT telemetry_sid_series_time_key UNIQUE (series_id, time)
);
CREATE INDEX telemetry_sid_time_idx ON telemetry_sid (time DESC);
"""
HYPERTABLE = (
    "SELECT create_hypertable('telemetry_sid', 'time', chunk_time_interval => INTERVAL '1 day')"
)

TEXT_STAGING = """CREATE TEMPORARY TABLE s_text (
    time_us bigint NOT NULL, device_id text NOT NULL, metric text NOT NULL,
    value double precision NOT NULL) ON COMMIT DELETE ROWS"""
TEXT_INSERT = """INSERT INTO telemetry (time, device_id, metric, value)
SELECT TIMESTAMPTZ 'epoch' + time_us * INTERVAL '1 microsecond', device_id, metric, value
FROM s_text ON CONFLICT DO NOTHING"""
SID_STAGING = """CREATE TEMPORARY TABLE s_sid (
    time_us bigint NOT NULL, series_id integer NOT NULL,
    value double precision NOT NULL) ON COMMIT DELETE ROWS"""
SID_INSERT = """INSERT INTO telemetry_sid (time, series_id, value)
SELECT TIMESTAMPTZ 'epoch' + time_us * INTERVAL '1 microsecond', series_id, value
FROM s_sid ON CONFLICT DO NOTHING"""
SID_RESOLVE = """INSERT INTO series (device_id, metric)
SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"""
SID_LOOKUP = """SELECT s.device_id, s.metric, s.id FROM series s
JOIN unnest($1::text[], $2::text[]) AS u(d, m) ON s.device_id = u.d AND s.metric = u.m"""

Row = tuple[int, str, str, float]


def make_rows(n: int, devices: int, hours_ago: int = 24) -> list[Row]:
    """Each device in turn, one reading (3 metrics) a second of data time."""
    start_us = (int(time.time()) - hours_ago * 3600) * 1_000_000
    rows: list[Row] = []
    k = 0
    while len(rows) < n:
        d, r = k % devices, k // devices
        t = start_us + r * 1_000_000 + d
        rows += [(t, f"dev-{d:06d}", m, 1000.5 + r % 100 + i) for i, m in enumerate(METRICS)]
        k += 1
    return rows[:n]


async def _write_text(conn: asyncpg.Connection, batch: list[Row]) -> int:
    async with conn.transaction():
        await conn.copy_records_to_table("s_text", records=batch)
        status = await conn.execute(TEXT_INSERT)
    return int(status.rsplit(" ", 1)[1])


async def _write_sid(
    conn: asyncpg.Connection, batch: list[Row], ids: dict[tuple[str, str], int]
) -> int:
    missing = list({(d, m) for _, d, m, _ in batch if (d, m) not in ids})
    if missing:
        devices, metrics = [d for d, _ in missing], [m for _, m in missing]
        await conn.execute(SID_RESOLVE, devices, metrics)
        for d, m, i in await conn.fetch(SID_LOOKUP, devices, metrics):
            ids[(d, m)] = i
    records = [(t, ids[(d, m)], v) for t, d, m, v in batch]
    async with conn.transaction():
        await conn.copy_records_to_table("s_sid", records=records)
        status = await conn.execute(SID_INSERT)
    return int(status.rsplit(" ", 1)[1])


def _batches(rows: list[Row]) -> Iterator[list[Row]]:
    return iter([rows[i : i + BATCH] for i in range(0, len(rows), BATCH)])


async def run_once(
    url: str, rows: list[Row], schema: str, devices: int, postmaster: int
) -> dict[str, Any]:
    conns = [await asyncpg.connect(url) for _ in range(2)]
    table = "telemetry" if schema == "text" else "telemetry_sid"
    try:
        await conns[0].execute(f"TRUNCATE {table}" + (", series" if schema == "series_id" else ""))
        for c in conns:
            await c.execute(TEXT_STAGING if schema == "text" else SID_STAGING)
        written = 0
        ids: dict[tuple[str, str], int] = {}  # one worker's map, shared by its connections

        async def writer(conn: asyncpg.Connection, batches: Iterator[list[Row]]) -> None:
            nonlocal written
            for batch in batches:
                # awaited first: `written += await ...` would read `written`
                # before the await and lose the other writer's additions
                n = await (
                    _write_text(conn, batch) if schema == "text" else _write_sid(conn, batch, ids)
                )
                written += n

        # Untimed: one reading of every series an hour earlier, so the timed
        # part is the steady state (every series id known); the first sight
        # of a series costs its own row in `series` and a round trip.
        warm = make_rows(devices * len(METRICS), devices, 25)
        warm_batches = _batches(warm)
        await asyncio.gather(*(writer(c, warm_batches) for c in conns))
        written = 0
        timed = _batches(rows)
        meter = CpuMeter({}, postmaster)
        started = time.perf_counter()
        await asyncio.gather(*(writer(c, timed) for c in conns))
        seconds = time.perf_counter() - started
        cpu = meter.stop()
        size = await conns[0].fetchval(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') "
            f"THEN hypertable_size('{table}') ELSE pg_total_relation_size('{table}') END"
        )
        if schema == "series_id":
            size += await conns[0].fetchval("SELECT pg_total_relation_size('series')")
    finally:
        for c in conns:
            await c.close()
    if written != len(rows):
        raise RuntimeError(f"{schema}: wrote {written} of {len(rows)} rows")
    return {
        "rows_per_s": round(len(rows) / seconds),
        "postgres_cpu_us_per_row": round(cpu["postgres"] / 100 * seconds * 1e6 / len(rows), 2),
        "bytes_per_row": round(int(size) / (len(rows) + devices * len(METRICS)), 1),
        "other_processes_percent": cpu["other processes"],
    }


async def measure(svc: Services, n_rows: int) -> dict[str, Any]:
    mode = await svc.create_db("bench_sid")
    url = svc.db_url("bench_sid")
    conn = await asyncpg.connect(svc.admin_url.rsplit("/", 1)[0] + "/bench_sid")
    try:
        await conn.execute(SERIES_SCHEMA)
        if mode == "timescaledb":
            await conn.execute(HYPERTABLE)
        await conn.execute("GRANT ALL ON series, telemetry_sid TO bridge")
    finally:
        await conn.close()
    out: dict[str, Any] = {"database_mode": mode, "rows": n_rows, "levels": {}}
    try:
        for devices in CARDINALITIES:
            rows = make_rows(n_rows, devices)
            runs: dict[str, list[dict[str, Any]]] = {"text": [], "series_id": []}
            for schema in ("text", "series_id", "series_id", "text"):  # interleaved, ABBA
                await asyncio.to_thread(wait_quiet)
                runs[schema].append(await run_once(url, rows, schema, devices, svc.postmaster))
                r = runs[schema][-1]
                print(
                    f"  {devices:>7,} devices, {schema:<9}: {r['rows_per_s']:>8,} rows/s, "
                    f"PostgreSQL {r['postgres_cpu_us_per_row']:.2f} us/row, "
                    f"{r['bytes_per_row']} B/row",
                    flush=True,
                )
            mean = {
                s: {k: round(statistics.fmean(r[k] for r in rs), 2) for k in rs[0]}
                for s, rs in runs.items()
            }
            out["levels"][str(devices)] = {
                "devices": devices,
                "series": devices * len(METRICS),
                "mean": mean,
                "series_id_to_text": {
                    "rows_per_s": round(
                        mean["series_id"]["rows_per_s"] / mean["text"]["rows_per_s"], 3
                    ),
                    "postgres_cpu_us_per_row": round(
                        mean["series_id"]["postgres_cpu_us_per_row"]
                        / mean["text"]["postgres_cpu_us_per_row"],
                        3,
                    ),
                    "bytes_per_row": round(
                        mean["series_id"]["bytes_per_row"] / mean["text"]["bytes_per_row"], 3
                    ),
                },
                "runs": runs,
            }
    finally:
        await svc.drop_db("bench_sid")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, not {ROWS:,}")
    args = parser.parse_args()
    svc = Services(PORTS, "bench-series-id")
    try:
        svc.start()
        result = asyncio.run(measure(svc, QUICK_ROWS if args.quick else ROWS))
        info = machine_info(svc, result["database_mode"], ["asyncpg"])
    finally:
        svc.stop()
    shared = f"{info['nproc']} cores shared by PostgreSQL and this writer"
    result = {
        "what": "idempotent batch writes (COPY to staging + INSERT ON CONFLICT DO NOTHING, "
        "1000-row batches, 2 connections) into today's text-keyed telemetry and into an "
        "integer-series-id twin, the same rows, interleaved ABBA",
        "note": f"absolute figures: {shared}",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "machine": info,
    } | result
    for devices, level in result["levels"].items():
        r = level["series_id_to_text"]
        print(
            f"{int(devices):,} devices: series id / text = {r['rows_per_s']:.2f}x rows/s, "
            f"{r['postgres_cpu_us_per_row']:.2f}x PostgreSQL CPU per row, "
            f"{r['bytes_per_row']:.2f}x bytes per row"
        )
    out = RESULTS / ("series_id-quick.json" if args.quick else "series_id.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
