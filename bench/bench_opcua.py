"""The edge agent's field side: OPC UA value changes and 200 Modbus PLCs.

opcua: an asyncua server (the tests' tests/edge/opcua_server.py, in this
process) with 1,000 Double nodes; `edge-agent run` subscribes to all of them
(publishing interval 0.1 s, queue 1000) and forwards to a private Mosquitto,
where a real `bridge run` writes a private PostgreSQL. The server changes
every node ``ROUNDS`` times, as fast as it can; measured, from the first
change: when every change was spooled (the agent's
edge_readings_collected_total) and when every one was in the database (rows
counted), and that the database holds exactly the initial values plus the
changes, once each.

modbus: 200 PLCs (tests/edge/plc_fleet.py, pymodbus servers in one
subprocess: 195 live, 2 answering after 1.2 s, 1 silent; plus 2 ports that
refuse) polled at 1 Hz for 10 registers (0-4 and 6-10, max_gap 1) for
``MODBUS_S`` seconds into the spool (no uplink): polls stored against polls
the PLCs answered, requests per poll, p99 jitter (the agent's histogram and
the PLCs' request intervals), overruns, and the CPU each side used.

Everything shares the machine's cores; each figure has the CPU beside it.
Run by bench_edge.py (``--only opcua,modbus``), or alone:

    .venv/bin/python bench/bench_opcua.py
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from services import Ports, Services, cpu_seconds, machine_busy_seconds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' simulated servers

from tests.edge.opcua_server import OpcServer, node_id  # noqa: E402
from tests.edge.test_modbus_fleet import device_toml  # noqa: E402

PORTS = Ports(35446, 36393, 31907, also=(39136, 39137))
BRIDGE_HTTP, STATUS = 39136, 39137
NODES, ROUNDS = 1000, 30
MODBUS_S = 30.0


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bytes(r.read())
    except OSError:
        return None


def metrics(port: int) -> dict[str, float]:
    body = _get(f"http://127.0.0.1:{port}/metrics") or b""
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def wait(predicate: Any, timeout: float, what: str, every: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic()


def agent(tmp: Path, name: str, config: str) -> subprocess.Popen[bytes]:
    path = tmp / f"{name}.toml"
    path.write_text(f'[spool]\npath = "{tmp / name}.db"\n[status]\nport = {STATUS}\n{config}')
    log = (tmp / f"{name}.log").open("ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "--config", str(path), "run"],
        stdout=log, stderr=log, env=env, cwd=ROOT,
    )  # fmt: skip
    wait(lambda: _get(f"http://127.0.0.1:{STATUS}/healthz") is not None, 60, f"{name}'s status")
    return proc


def opcua(tmp: Path) -> dict[str, Any]:
    svc = Services(PORTS, "bench-opcua")
    server = OpcServer(NODES)
    bridge = edge = None
    try:
        svc.start()
        import asyncio

        mode = asyncio.run(svc.create_db("opcua"))
        (tmp / "bridge.toml").write_text(
            f'[database]\nurl = "{svc.db_url("opcua")}"\n[redis]\nurl = "{svc.redis_url}"\n'
            f'[mqtt]\nport = {PORTS.mqtt}\nclient_id = "bench-opcua-bridge"\n'
            f"[http]\nport = {BRIDGE_HTTP}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        bridge = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "--config", str(tmp / "bridge.toml"), "run"],
            stdout=(tmp / "bridge.log").open("ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        wait(lambda: _get(f"http://127.0.0.1:{BRIDGE_HTTP}/readyz") is not None, 60, "the bridge")
        server.start()
        nodes = "".join(
            f'[[opcua.servers.groups.nodes]]\nnode_id = "{node_id(i)}"\n'
            f'device_id = "line-{i // 100}"\nmetric = "v{i:04d}"\n'
            for i in range(NODES)
        )
        edge = agent(
            tmp,
            "opcua-agent",
            f'[uplink]\nport = {PORTS.mqtt}\nclient_id = "bench-opcua-edge"\n'
            f'[[opcua.servers]]\nname = "bench"\nurl = "{server.url}"\n'
            '[[opcua.servers.groups]]\nmode = "subscription"\ninterval_s = 0.0\n'
            f"publishing_interval_s = 0.1\nqueue_size = 1000\n{nodes}",
        )
        collected = 'edge_readings_collected_total{source="opcua:bench"}'
        wait(lambda: metrics(STATUS).get(collected) == NODES, 60, "the initial values")
        db = svc.db_url("opcua")

        def rows() -> int:
            import asyncpg

            async def q() -> int:
                conn = await asyncpg.connect(db)
                try:
                    return int(await conn.fetchval("SELECT count(*) FROM telemetry"))
                finally:
                    await conn.close()

            return asyncio.run(q())

        wait(lambda: rows() == NODES, 60, "the initial values in the database", every=0.2)
        pids = {
            "agent": [edge.pid],
            "bridge": [bridge.pid],
            "mosquitto": [svc.procs["mosquitto"].pid],
        }
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        me0, busy0 = cpu_seconds(os.getpid()), machine_busy_seconds()
        total = NODES * (ROUNDS + 1)
        started = time.monotonic()
        for r in range(1, ROUNDS + 1):
            server.change({i: 1000.0 * r + i + 0.5 for i in range(NODES)})
        written = time.monotonic()
        spooled = wait(lambda: metrics(STATUS).get(collected, 0) >= total, 300, "the spool", 0.02)
        stored = wait(lambda: rows() >= total, 300, "the database", every=0.05)
        elapsed = stored - started
        cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in pids.items()}
        cpu["server (asyncua, this process)"] = cpu_seconds(os.getpid()) - me0
        busy = machine_busy_seconds() - busy0
        changes = server.changes
        final = rows()
    finally:
        for proc in (edge, bridge):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        server.close()
        svc.stop()
    return {
        "database_mode": mode,
        "nodes": NODES,
        "changes": changes,
        "rows_stored": final,
        "exact": final == total and changes == NODES * ROUNDS,
        "server_write_seconds": round(written - started, 2),
        "server_changes_per_s": round(changes / (written - started)),
        "spooled_seconds": round(spooled - started, 2),
        "spooled_changes_per_s": round(changes / (spooled - started)),
        "stored_seconds": round(elapsed, 2),
        "stored_changes_per_s": round(changes / elapsed),
        "cpu_percent_of_one_core": {k: round(100 * v / elapsed, 1) for k, v in cpu.items()}
        | {"whole machine": round(100 * busy / elapsed, 1)},
        "cpu_us_per_change": {
            k: round(1e6 * v / changes, 1) for k, v in cpu.items() if k in ("agent", "bridge")
        },
    }


def modbus(tmp: Path) -> dict[str, Any]:
    ready, stats = tmp / "ready.json", tmp / "stats.json"
    fleet = subprocess.Popen(
        [
            sys.executable, "-m", "tests.edge.plc_fleet", "--live", "195", "--slow", "2",
            "--slow-delay", "1.2", "--silent", "1", "--ready", str(ready), "--stats", str(stats),
        ],
        cwd=ROOT,
    )  # fmt: skip
    edge = None
    try:
        wait(ready.exists, 60, "the PLC fleet")
        ports = json.loads(ready.read_text())
        config = "[uplink]\nport = 1\n"  # offline: every poll stays in the spool to be counted
        devices: dict[str, int] = {}
        refused = [1, 2]  # privileged ports nobody listens on: connection refused
        for n, (kind, port, timeout) in enumerate(
            [("live", p, 1.0) for p in ports["live"]]
            + [("slow", p, 2.0) for p in ports["slow"]]
            + [("silent", p, 1.0) for p in ports["silent"]]
            + [("refused", p, 1.0) for p in refused]
        ):
            devices[f"{kind}-{n:03d}"] = port
            config += device_toml(f"{kind}-{n:03d}", port, timeout)
        edge = agent(tmp, "modbus-agent", config)
        cpu0 = (cpu_seconds(edge.pid), cpu_seconds(fleet.pid), machine_busy_seconds())
        started = time.monotonic()
        time.sleep(MODBUS_S)
        m = metrics(STATUS)
        elapsed = time.monotonic() - started
        cpu = {
            "agent": cpu_seconds(edge.pid) - cpu0[0],
            "PLCs (pymodbus servers)": cpu_seconds(fleet.pid) - cpu0[1],
            "whole machine": machine_busy_seconds() - cpu0[2],
        }
        edge.terminate()
        edge.wait(30)
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
        fleet.terminate()
        fleet.wait(30)
    served = {int(p): s for p, s in json.loads(stats.read_text()).items()}
    import sqlite3

    db = sqlite3.connect(tmp / "modbus-agent.db")
    stored = dict(
        db.execute("SELECT device_id, count(DISTINCT time_us) FROM readings GROUP BY device_id")
    )
    db.close()
    answering = [d for d in devices if d.startswith(("live", "slow"))]
    live = [d for d in devices if d.startswith("live")]
    deviations = sorted(
        abs(b - a - 1.0)
        for d in live
        for a, b in itertools.pairwise(sorted(served[devices[d]]["arrivals"]))
    )
    count = m['edge_poll_jitter_seconds_count{collector="modbus"}']
    within = {
        le: round(m[f'edge_poll_jitter_seconds_bucket{{collector="modbus",le="{le}"}}'] / count, 4)
        for le in ("0.005", "0.01", "0.025", "0.05", "0.1")
    }
    return {
        "devices": len(devices),
        "live": len(live),
        "slow_1_2s": 2,
        "silent": 1,
        "refused": 2,
        "registers_per_device": 10,
        "poll_interval_s": 1.0,
        "seconds": round(elapsed, 1),
        "polls_answered": sum(served[devices[d]]["answered"] for d in answering),
        "polls_stored": sum(stored.get(d, 0) for d in answering),
        "every_answered_poll_stored": all(
            stored.get(d, 0) == served[devices[d]]["answered"] for d in answering
        ),
        "requests_per_poll": sorted(
            {m[f'edge_modbus_requests_per_poll{{device="{d}"}}'] for d in answering}
        ),
        "requests_received_by_plcs": sum(len(served[devices[d]]["arrivals"]) for d in answering),
        "jitter_fraction_within_s": within,
        "plc_side_interval_deviation_ms": {
            "p50": round(1000 * deviations[len(deviations) // 2], 1),
            "p99": round(1000 * deviations[int(0.99 * len(deviations))], 1),
            "max": round(1000 * deviations[-1], 1),
        },
        "overruns_slow": sum(
            m.get(f'edge_poll_overruns_total{{device="{d}"}}', 0) for d in devices if "slow" in d
        ),
        "cpu_percent_of_one_core": {k: round(100 * v / elapsed, 1) for k, v in cpu.items()},
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run(only: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-opcua-") as folder:
        tmp = Path(folder)
        if "opcua" in only:
            out["opcua"] = {"measured": now()} | opcua(tmp)
            print(f"  opcua: {json.dumps(out['opcua'])}")
        if "modbus" in only:
            out["modbus_200"] = {"measured": now()} | modbus(tmp)
            print(f"  modbus_200: {json.dumps(out['modbus_200'])}")
    return out


if __name__ == "__main__":
    print(json.dumps(run({"opcua", "modbus"}), indent=2))
