"""Cardinality: end-to-end ingest at 1k, 10k and 100k devices x 3 metrics.

The same number of single-reading seed_json messages at every level (each
device publishing in turn, once a second of data time), through the same
private services and `bridge run` with its defaults as bench_ingest.py, so
the only thing that changes is how many distinct series the bridge, Redis
and the database see. Before the measured messages, each device publishes
once and that is committed (bench_ingest.first_sight): the measured rate is
that of a fleet already running, whose devices have their registry rows and
cache keys. Without it, a third of the 100k level's messages would be a
device's first (a registry insert, new Redis keys) against 1 in 300 at 1k;
that first-sight rate is recorded too (``warm_up``). Per level:

- points/s publish-to-committed (bench_ingest.throughput), and the bridge's
  CPU per message;
- the bridge worker's peak RSS (VmHWM);
- Redis: used_memory above an empty instance, keys, and bytes per series;
- the database: telemetry's size with its indexes, per stored point.

The target: at 100k devices, at least 80% of the 1k-device rate, with RSS
bounded (not growing with the device count beyond the cache's own keys,
which live in Redis). The 300k level (one message per device) lies past
every per-device bound of the bridge (the registry cache's 131,072 devices,
the router's 16,384 topics, the cache feed's 32,768 waiting points): its RSS
is where the bound shows.

    .venv/bin/python bench/bench_cardinality.py [--quick] [--levels 1000,10000,100000,300000]

Runs on ports of its own (Mosquitto 31893, PostgreSQL 35492, Redis 36399,
bridge HTTP 39118). Writes bench/results/cardinality.json and
bench/results/cardinality.png (--quick: cardinality-quick.*, not kept in git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import bench_ingest as ingest
import redis
from services import Ports, Services

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cardinality.json"
PLOT = ROOT / "bench" / "results" / "cardinality.png"
PG_PORT, REDIS_PORT, MQTT_PORT, HTTP_PORT = 35492, 36399, 31893, 39118
LEVELS = (1_000, 10_000, 100_000, 300_000)
TARGET_DEVICES = 100_000  # the level the ratio is taken at (else the last)
MESSAGES = 300_000  # at every level: 300 readings per device at 1k, 3 at 100k
QUICK_MESSAGES = 60_000
TARGET_RATIO = 0.80


def database_size(url: str) -> dict[str, Any]:
    async def q() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            rows = int(await conn.fetchval("SELECT count(*) FROM telemetry"))
            # hypertable_size when TimescaleDB holds the table, else the table's own
            size = await conn.fetchval(
                "SELECT CASE WHEN to_regproc('hypertable_size') IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') "
                "THEN hypertable_size('telemetry') "
                "ELSE pg_total_relation_size('telemetry') END"
            )
            return {"db_bytes": int(size), "db_bytes_per_point": round(int(size) / rows, 1)}
        finally:
            await conn.close()

    return asyncio.run(q())


def redis_usage(url: str, baseline: int, series: int) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    try:
        used = int(r.info("memory")["used_memory"]) - baseline
        keys = int(r.dbsize())
        r.flushall()
    finally:
        r.close()
    return {"redis_bytes": used, "redis_keys": keys, "redis_bytes_per_series": round(used / series)}


def level(svc: Services, devices: int, messages: int) -> dict[str, Any]:
    r = redis.Redis.from_url(svc.redis_url)
    r.flushall()
    baseline = int(r.info("memory")["used_memory"])
    r.close()
    series = devices * len(ingest.METRICS)
    stats: dict[str, Any] = {}

    def inspect(url: str) -> dict[str, Any]:
        stats.update(database_size(url))
        stats.update(redis_usage(svc.redis_url, baseline, series))
        return {}

    print(f"  {devices:,} devices: publishing {messages:,} messages ...", flush=True)
    out = ingest.throughput(
        svc, f"card{devices}", "single", messages, devices, inspect=inspect, warm_up=True
    )
    out |= stats | {"series": series}
    print(
        f"    {out['points_per_s']:,} points/s, bridge {out['cpu_us_per_message']['bridge']} "
        f"us/msg, RSS peak {out['rss_peak_mb']} MB (end {out['rss_end_mb']}), "
        f"Redis {out['redis_bytes'] / 2**20:.1f} MiB "
        f"({out['redis_bytes_per_series']} B/series), "
        f"database {out['db_bytes_per_point']} B/point; "
        f"first sight of each device {out['warm_up']['points_per_s']:,} points/s",
        flush=True,
    )
    return out


def plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["levels"]
    xs = [r["devices"] for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    left.plot(xs, [r["points_per_s"] for r in runs], marker="o", label="points/s")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("devices (x 3 metrics)")
    left.set_ylabel("points/s, publish to committed")
    left.axhline(
        TARGET_RATIO * runs[0]["points_per_s"],
        color="gray",
        linestyle=":",
        label="80% of the first",
    )
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")
    right.plot(xs, [r["rss_peak_mb"] for r in runs], marker="o", label="bridge peak RSS (MB)")
    right.plot(xs, [r["redis_bytes"] / 2**20 for r in runs], marker="s", label="Redis (MiB)")
    right.set_xscale("log")
    right.set_ylim(bottom=0)
    right.set_xlabel("devices (x 3 metrics)")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    fig.suptitle(results["note"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} messages a level")
    parser.add_argument(
        "--levels",
        default=",".join(map(str, LEVELS)),
        help="device counts, comma-separated (default %(default)s)",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    messages = QUICK_MESSAGES if args.quick else MESSAGES
    if messages < max(levels):
        sys.exit(f"{messages:,} messages cannot reach each of {max(levels):,} devices once")

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # bench_ingest's phases read these module constants when they run
    ingest.MQTT_PORT, ingest.HTTP_PORT = MQTT_PORT, HTTP_PORT
    svc = Services(Ports(PG_PORT, REDIS_PORT, MQTT_PORT, also=(HTTP_PORT,)), "bench-cardinality")
    try:
        svc.start()
        mode = "timescaledb" if svc.timescaledb else "plain"
        info = ingest.machine(svc, mode)
        shared = f"{info['nproc']} cores shared by every component"
        print(f"machine: {info['nproc']} cores ({info['cpu']}); absolute figures: {shared}")
        runs = [level(svc, devices, messages) for devices in levels]
    finally:
        svc.stop()
        for child in ingest._children:
            if getattr(child, "poll", None) is not None and child.poll() is None:
                child.kill()
    first = runs[0]
    last = next((r for r in runs if r["devices"] == TARGET_DEVICES), runs[-1])
    ratio = last["points_per_s"] / first["points_per_s"]
    results = {
        "what": "single-reading seed_json messages end to end (bench_ingest.throughput) at "
        "each device count, the same number of messages at every level",
        "note": f"absolute figures: {shared} (broker, database, Redis, bridge, publisher)",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "machine": info,
        "messages_per_level": messages,
        "levels": runs,
        "ratio_last_to_first": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "rss_growth_mb": round(last["rss_peak_mb"] - first["rss_peak_mb"], 1),
        "rss_peak_mb_by_devices": {r["devices"]: r["rss_peak_mb"] for r in runs},
        "rss_end_mb_by_devices": {r["devices"]: r["rss_end_mb"] for r in runs},
    }
    print(
        f"{last['devices']:,} / {first['devices']:,} devices: {ratio:.2f} of the rate "
        f"(target >= {TARGET_RATIO}); bridge RSS {first['rss_peak_mb']} -> {last['rss_peak_mb']} MB"
    )
    # quick runs are smoke tests, kept out of git (.gitignore: *-quick.*)
    suffix = "-quick" if args.quick else ""
    out = RESULTS.with_name(f"cardinality{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    png = plot(results, PLOT.with_name(f"cardinality{suffix}.png"))
    print(f"wrote {out.relative_to(ROOT)} and {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
