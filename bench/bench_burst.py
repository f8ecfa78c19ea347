"""The seed's burst scenario, open loop, on both HTTP ingest routes.

The seed's Artillery test: 60 s at 10 arrivals/s, 120 s at 1,000 arrivals/s,
60 s at 10 arrivals/s, each arrival one POST /api/v1/telemetry/batch. Here the
arrivals come at those rates whatever the server does (burst_load.py: an open
loop; latency from each arrival's due time; late arrivals counted), against
`bridge api` with each ingest route in turn, each on a fresh database with
`bridge run` beside it:

  database   api.ingest_via = "database": answered after the commit
  broker     api.ingest_via = "broker": answered on the broker's PUBACK; the
             bridge stores the points from the broker

Each arrival is one reading (3 metrics) of a device of its own, in the body
{"readings": [...]} (the seed posts a bare reading to /batch; this API takes
a batch as {"readings": [...]}). Afterwards the bench counts, per arrival,
the rows in the database: every accepted (202) reading must be there exactly
once, every refused one (4xx) not at all; arrivals with no answer or a 5xx
are reported with what of them was stored.

Private services: Mosquitto 42883, PostgreSQL 42432, Redis 42379, the
bridge's health port 42108, the API 42180.

    .venv/bin/python bench/bench_burst.py [--quick] [--routes database,broker] [--burst-rate N]

Writes bench/results/burst.json and burst-latency.png, a latency CDF per
phase and route (--quick or --burst-rate: burst-quick.*, a smoke test,
ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import bench_api
import orjson
from burst_load import Outcome, Phase, phase_summary, run_open_loop
from burst_plot import latency_cdf
from services import DISTURBED, CpuMeter, Ports, Services, machine_info

RESULTS_DIR = Path(__file__).resolve().parent / "results"
API_PORT, BRIDGE_HTTP_PORT = 42180, 42108
PORTS = Ports(postgres=42432, redis=42379, mqtt=42883, also=(API_PORT, BRIDGE_HTTP_PORT))
FULL = [Phase("warm-up", 60, 10), Phase("burst", 120, 1000), Phase("cool-down", 60, 10)]
QUICK = [Phase("warm-up", 5, 10), Phase("burst", 10, 200), Phase("cool-down", 5, 10)]
ROUTES = ("database", "broker")
POINTS_PER_READING = 3
SETTLE_S = 20.0  # broker route: no new row for this long after the last answer: all stored


def request_factory(route: str, token: str) -> Callable[[str, int], tuple[str, bytes]]:
    """(device id, request bytes) for arrival i of a phase: one reading of a
    device of its own, timestamped when it is due."""
    head = (
        f"POST /api/v1/telemetry/batch HTTP/1.1\r\nHost: 127.0.0.1:{API_PORT}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    ).encode()

    def build(phase: str, i: int) -> tuple[str, bytes]:
        device = f"burst-{route}-{phase}-{i:06d}"
        now = dt.datetime.now(dt.UTC)
        reading = {
            "device_id": device,
            "timestamp": now,
            "data": {"flow_rate": 1000.5 + i % 500, "pip": 2500.25, "temperature": 70.2},
        }
        body = orjson.dumps({"readings": [reading]}, option=orjson.OPT_UTC_Z)
        return device, head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    return build


def deploy(svc: Services, route: str) -> tuple[bench_api.Proc, bench_api.Proc, str, str]:
    """A fresh database, `bridge run`, `bridge api` on `route`, a write key."""
    db = f"burst_{route}"
    asyncio.run(svc.create_db(db))
    config = bench_api.write_config(svc, db)
    cli = [sys.executable, "-m", "bridge.cli", "--config", str(config)]
    bridge = bench_api.Proc("bridge run", [*cli, "run"], svc.tmp / f"bridge-{route}.log")
    bench_api.wait_http(f"http://127.0.0.1:{BRIDGE_HTTP_PORT}/readyz", bridge, 60)
    env = {"BRIDGE_API__INGEST_VIA": route}
    api = bench_api.Proc("bridge api", [*cli, "api"], svc.tmp / f"api-{route}.log", env)
    ready = f"http://127.0.0.1:{API_PORT}/readyz"
    bench_api.wait_http(ready, api, 60)
    deadline = time.monotonic() + 30
    while route == "broker":
        checks = json.loads(bench_api.http_get(ready)[2])["checks"]
        if checks.get("broker") == "ok":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not log in to the broker: {checks}")
        time.sleep(0.2)
    return bridge, api, bench_api.create_key(config, "write"), db


async def _stored(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT device_id, count(*) AS n FROM telemetry GROUP BY 1")
        return {r["device_id"]: int(r["n"]) for r in rows}
    finally:
        await conn.close()


def settle(url: str, expected: int, bridge: bench_api.Proc) -> dict[str, int]:
    """Waits until `expected` rows are stored or none arrived for SETTLE_S."""
    last, since = -1, time.monotonic()
    while True:
        stored = asyncio.run(_stored(url))
        n = sum(stored.values())
        if n >= expected:
            return stored
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > SETTLE_S:
            return stored
        bridge.check()
        time.sleep(0.5)


def exactly_once(outcomes: list[Outcome], stored: dict[str, int]) -> dict[str, Any]:
    accepted = [o for o in outcomes if o.status == 202]
    refused = [o for o in outcomes if 400 <= o.status < 500]
    unknown = [o for o in outcomes if o.status == 0 or o.status >= 500]
    once = sum(1 for o in accepted if stored.get(o.key) == POINTS_PER_READING)
    return {
        "accepted": len(accepted),
        "accepted_stored_exactly_once": once,
        "accepted_missing_or_partial": len(accepted) - once,
        "accepted_over_stored": sum(
            1 for o in accepted if stored.get(o.key, 0) > POINTS_PER_READING
        ),
        "refused": len(refused),
        "refused_but_stored": sum(1 for o in refused if stored.get(o.key)),
        "no_answer_or_5xx": len(unknown),
        "no_answer_or_5xx_stored": sum(1 for o in unknown if stored.get(o.key)),
        "rows_not_from_an_arrival": sum(stored.values())
        - sum(stored.get(o.key, 0) for o in outcomes),
        "pass": once == len(accepted) and not any(stored.get(o.key) for o in refused),
    }


def run_route(
    svc: Services, route: str, phases: list[Phase], kept: dict[str, list[Outcome]]
) -> dict[str, Any]:
    """One route's run; its outcomes go into `kept` (for the plot)."""
    bridge, api, token, db = deploy(svc, route)
    try:
        meter = CpuMeter(
            {
                "api": api.tree(),
                "bridge": bridge.tree(),
                "redis": [svc.procs["redis"].pid],
                "mosquitto": [svc.procs["mosquitto"].pid],
            },
            svc.postmaster,
        )
        outcomes, connections = asyncio.run(
            run_open_loop("127.0.0.1", API_PORT, phases, request_factory(route, token))
        )
        cpu = meter.stop()
        kept[route] = outcomes
        accepted = sum(1 for o in outcomes if o.status == 202)
        stored = settle(svc.db_url(db), accepted * POINTS_PER_READING, bridge)
    finally:
        api.stop()
        bridge.stop()
    asyncio.run(svc.drop_db(db))
    cpu["load generator (this process)"] = cpu.pop("bench (this process)", 0.0)
    return {
        "ingest_via": route,
        "phases": {p.name: phase_summary(outcomes, p) for p in phases},
        "exactly_once": exactly_once(outcomes, stored),
        "connections_opened": connections,
        "cpu_percent_of_one_core": cpu,
        "disturbed": cpu["other processes"] > DISTURBED,
    }


def print_route(r: dict[str, Any]) -> None:
    print(f"  ingest_via = {r['ingest_via']}" + (" [DISTURBED]" if r["disturbed"] else ""))
    for name, p in r["phases"].items():
        lat, late = p["latency_from_due_ms"], p["late_by_ms"]
        print(
            f"    {name:<10} {p['arrivals']:>7,} arrivals at {p['rate_per_s']:g}/s: p50 "
            f"{lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms (from due time); "
            f"statuses {p['statuses']}; {p['late_arrivals']:,} late"
            + (f" (by up to {late['max']} ms)" if p["late_arrivals"] else "")
        )
    e = r["exactly_once"]
    print(
        f"    stored: {e['accepted_stored_exactly_once']:,} of {e['accepted']:,} accepted "
        f"readings exactly once; {e['refused_but_stored']} refused but stored; "
        f"{e['no_answer_or_5xx']} without an answer or with a 5xx "
        f"({e['no_answer_or_5xx_stored']} of them stored) -> {'PASS' if e['pass'] else 'FAIL'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shortened schedule: a smoke test")
    parser.add_argument("--routes", default=",".join(ROUTES), help="database,broker")
    parser.add_argument("--burst-rate", type=float, help="arrivals/s of the burst phase instead")
    args = parser.parse_args()
    routes = [r for r in args.routes.split(",") if r]
    for r in routes:
        if r not in ROUTES:
            raise SystemExit(f"--routes: unknown route {r!r}; choose from {', '.join(ROUTES)}")
    phases = QUICK if args.quick else FULL
    if args.burst_rate:
        phases = [
            Phase(p.name, p.seconds, args.burst_rate) if p.name == "burst" else p for p in phases
        ]

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # bench_api's config writer and processes serve this bench, on these ports.
    bench_api.PORTS, bench_api.API_PORT, bench_api.BRIDGE_HTTP_PORT = (
        PORTS,
        API_PORT,
        BRIDGE_HTTP_PORT,
    )
    began = time.monotonic()
    svc = Services(PORTS, "bench-burst")
    try:
        svc.start()
        mode = asyncio.run(svc.create_db("burst_probe"))
        asyncio.run(svc.drop_db("burst_probe"))
        info = machine_info(svc, mode, ["asyncpg", "orjson"])
        by_route = {}
        outcomes: dict[str, list[Outcome]] = {}
        for route in routes:
            print(f"  ingest_via = {route} ...", flush=True)
            by_route[route] = run_route(svc, route, phases, outcomes)
            print_route(by_route[route])
        results = {
            "what": "the seed's burst scenario (Artillery phases), open loop, POST "
            "/api/v1/telemetry/batch, one reading per arrival, per ingest route",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": args.quick,
            "schedule": [p.__dict__ for p in phases],
            "machine": info,
            "by_ingest_via": by_route,
            "all_pass": all(r["exactly_once"]["pass"] for r in by_route.values()),
            "elapsed_s": round(time.monotonic() - began, 1),
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        name = "burst-quick" if args.quick or args.burst_rate else "burst"
        out = RESULTS_DIR / f"{name}.json"
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        png = latency_cdf(outcomes, RESULTS_DIR / f"{name}-latency.png")
        print(f"wrote {out} and {png.name} ({results['elapsed_s']:.0f}s)")
    finally:
        bench_api.stop_all(list(bench_api._children))
        svc.stop()


if __name__ == "__main__":
    main()
