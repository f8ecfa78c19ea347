"""Storage per point: bytes on disk per telemetry row for a day of data
(before and, on TimescaleDB, after compression), and Redis bytes per series
holding a full recent window. Private services (bench/services.py); writes
bench/results/storage.json. `bridge plan` takes its constants from these
figures (bench/write_constants.py).

The day: DEVICES devices x 3 metrics, one reading every STEP_S seconds, values
a random walk (as sensors drift; constant values would compress unfairly well).
Bytes are the day partition's (plain) or the hypertable's chunks' (TimescaleDB)
total: heap, TOAST and indexes, after VACUUM.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import Ports, Services, machine_info  # noqa: E402
from bridge.cache.writer import CacheWriter  # noqa: E402
from core.types import Point  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "storage.json"
PORTS = Ports(postgres=38432, redis=38379, mqtt=38883)
DEVICES, METRICS, STEP_S = 100, ("flow_rate", "pip", "temperature"), 60
REDIS_SERIES, WINDOW_S = 600, 900  # series x one point a second over the default window


def day_rows(day: dt.date) -> list[tuple[dt.datetime, str, str, float]]:
    rng = random.Random(7)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    rows = []
    for d in range(DEVICES):
        level = {m: rng.uniform(10, 1000) for m in METRICS}
        for n in range(86_400 // STEP_S):
            t = start + dt.timedelta(seconds=n * STEP_S, microseconds=d)
            for m in METRICS:
                level[m] += rng.gauss(0, 0.5)
                rows.append((t, f"dev-{d:05d}", m, round(level[m], 3)))
    return rows


async def disk(svc: Services, mode: str, url: str) -> dict[str, Any]:
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    rows = day_rows(day)
    conn = await asyncpg.connect(url)
    try:
        if mode == "plain":
            await conn.execute("SELECT bridge_create_partition($1)", day)
        await conn.copy_records_to_table(
            "telemetry", records=rows, columns=["time", "device_id", "metric", "value"]
        )
        await conn.execute("VACUUM ANALYZE telemetry")
        out: dict[str, Any] = {"rows": len(rows), "day": str(day), "mode": mode}
        if mode == "plain":
            size = await conn.fetchval(
                "SELECT pg_total_relation_size(format('telemetry_p%s', to_char($1::date, 'YYYYMMDD')))",
                day,
            )
            out["bytes_per_point"] = round(int(size) / len(rows), 1)
        else:
            size = await conn.fetchval(
                "SELECT sum(total_bytes) FROM chunks_detailed_size('telemetry')"
            )
            out["bytes_per_point"] = round(int(size) / len(rows), 1)
            await conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('telemetry') c"
            )
            after = await conn.fetchval(
                "SELECT sum(after_compression_total_bytes) FROM hypertable_compression_stats('telemetry')"
            )
            out["compressed_bytes_per_point"] = round(int(after) / len(rows), 1)
        return out
    finally:
        await conn.close()


async def redis_series(url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    before = (await client.info("memory"))["used_memory"]
    now_us = time.time_ns() // 1000
    start = now_us - WINDOW_S * 1_000_000
    async with CacheWriter(url, window_s=WINDOW_S) as sink:
        for second in range(WINDOW_S):
            batch = [
                Point(start + second * 1_000_000 + s, f"dev-{s // 3:05d}", METRICS[s % 3], 1.5 * s)
                for s in range(REDIS_SERIES)
            ]
            await sink.write(batch, now_us)
    after = (await client.info("memory"))["used_memory"]
    await client.aclose()
    return {
        "series": REDIS_SERIES,
        "points_per_series": WINDOW_S,
        "bytes_per_series": round((after - before) / REDIS_SERIES),
    }


def main() -> None:
    svc = Services(PORTS, name="bench-storage")
    try:
        svc.start()
        mode = asyncio.run(svc.create_db("storage"))
        url = svc.db_url("storage")
        result = {
            "what": "bytes on disk per telemetry row (a day of data) and Redis bytes per series "
            "(a full window at 1 Hz)",
            "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine_info(svc, mode, ["asyncpg", "redis"]),
            "disk": asyncio.run(disk(svc, mode, url)),
            "redis": asyncio.run(redis_series(svc.redis_url)),
        }
    finally:
        svc.stop()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("disk", "redis")}, indent=2))
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
