"""Agent to database, with and without commit receipts, in one run.

A spool holding a backlog (bench_edge.fill: 1000 devices x 3 metrics) is
drained by `edge-agent run` (drain_rate 0) through a private Mosquitto into
a real `bridge run` (``--workers``, 1 by default) and PostgreSQL
(bench/services.py); timed from the agent's launch until every reading is in the database and the spool is
empty. Receipts off (uplink.receipts = off, receipts.enabled = false) and on
take turns, ``--rounds`` each, a fresh database each time; the best of each
is compared. A QoS 0 subscriber to receipts/# counts the receipts' messages
and bytes (topic and payload), stated per 1,000 agent messages.

    .venv/bin/python bench/bench_receipts.py [--readings 200000] [--rounds 2]
                                             [--workers 1] [--quick] [--out FILE]

Run by bench_edge.py (``--only receipts``), which writes the figures to
bench/results/edge.json; alone, it prints them (and writes ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from services import Ports, Services

ROOT = Path(__file__).resolve().parent.parent
PORTS = Ports(35449, 36396, 31911, also=(39142, 39143, 39144, 39145, 39146))
STATUS, BRIDGE_HTTP = 39142, 39143  # worker N's on BRIDGE_HTTP + N


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bytes(r.read())
    except OSError:
        return None


def metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in (_get(f"http://127.0.0.1:{port}/metrics") or b"").decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def wait(predicate: Any, timeout: float, what: str, every: float = 0.1) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic()


class ReceiptCounter:
    """Counts receipts on receipts/#, at QoS 0 so the broker never waits for it."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-receipts-sub")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("receipts/#", qos=0)
        self.client.connect("127.0.0.1", PORTS.mqtt)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages += 1
        self.bytes += len(message.topic) + len(message.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rows(db: str) -> int:
    async def q() -> int:
        conn = await asyncpg.connect(db)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM telemetry"))
        finally:
            await conn.close()

    return asyncio.run(q())


def one(  # noqa: PLR0917 - one bench run's whole setting
    svc: Services, tmp: Path, template: Path, readings: int, on: bool, n: int, workers: int
) -> dict[str, Any]:
    name = f"receipts_{'on' if on else 'off'}_{n}"
    asyncio.run(svc.create_db(name))
    db = svc.db_url(name)
    (tmp / f"{name}-bridge.toml").write_text(
        f'[database]\nurl = "{db}"\n[redis]\nurl = "{svc.redis_url}"\n'
        f'[mqtt]\nport = {PORTS.mqtt}\nclient_id = "bench-{name}"\ngroup = "{name}"\n'
        f"export_sys = false\n[http]\nport = {BRIDGE_HTTP}\n"
        f"[receipts]\nenabled = {'true' if on else 'false'}\n"
    )
    spool = tmp / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{template}{suffix}")
        if src.exists():
            Path(f"{spool}{suffix}").write_bytes(src.read_bytes())
    (tmp / f"{name}-agent.toml").write_text(
        f'[spool]\npath = "{spool}"\nmax_readings = {readings + 1}\n'
        f"[status]\nport = {STATUS}\n"
        f'[uplink]\nport = {PORTS.mqtt}\nclient_id = "bench-receipts-edge"\ndrain_rate = 0\n'
        f'receipts = "{"on" if on else "off"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "EDGE_"))}
    log = (tmp / f"{name}.log").open("ab")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "--config", str(tmp / f"{name}-bridge.toml"), "run",
         "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    agent = None
    counter = ReceiptCounter()
    try:
        for w in range(workers):
            url = f"http://127.0.0.1:{BRIDGE_HTTP + w}/readyz"
            wait(lambda u=url: _get(u) is not None, 60, "the bridge")
        started = time.monotonic()
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "--config", str(tmp / f"{name}-agent.toml"),
             "run"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        # From the agent's launch: its start-up is the same in both modes, and
        # its /healthz may answer only after a first large spool read.
        stored = wait(lambda: rows(db) >= readings, 600, "every reading in the database", 0.2)

        def spool_empty() -> bool:
            m = metrics(STATUS)
            return bool(m) and m.get("edge_spool_readings", -1) == 0

        emptied = wait(spool_empty, 120, "the spool empty")
        agent_messages = metrics(STATUS).get("edge_published_messages_total", 0.0)
        time.sleep(0.5)  # the last receipts, counted
        final = rows(db)
    finally:
        for proc in (agent, bridge):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        counter.close()
        asyncio.run(svc.drop_db(name))
    elapsed = max(stored, emptied) - started
    return {
        "receipts": on,
        "readings": readings,
        "rows_stored": final,
        "workers": workers,
        "seconds": round(elapsed, 2),
        "stored_s": round(stored - started, 2),
        "spool_empty_s": round(emptied - started, 2),
        "readings_per_s": round(readings / elapsed),
        "agent_messages": int(agent_messages),
        "receipt_messages": counter.messages,
        "receipt_bytes": counter.bytes,
    }


def run(readings: int, rounds: int, workers: int = 1) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_edge import fill

    svc = Services(PORTS, "bench-receipts")
    runs: list[dict[str, Any]] = []
    try:
        svc.start()
        with tempfile.TemporaryDirectory(prefix="bench-receipts-") as folder:
            tmp = Path(folder)
            template = tmp / "backlog.db"
            fill(template, readings)
            for n in range(rounds):
                for on in (False, True):
                    res = one(svc, tmp, template, readings, on, n, workers)
                    print(f"  receipts {'on ' if on else 'off'}: {json.dumps(res)}")
                    runs.append(res)
    finally:
        svc.stop()
    best = {
        on: max((r for r in runs if r["receipts"] is on), key=lambda r: r["readings_per_s"])
        for on in (False, True)
    }
    with_receipts = best[True]
    per_1000 = 1000 / max(1, with_receipts["agent_messages"])
    return {
        "readings": readings,
        "rounds": rounds,
        "bridge_workers": workers,
        "without_receipts_readings_per_s": best[False]["readings_per_s"],
        "with_receipts_readings_per_s": with_receipts["readings_per_s"],
        "ratio": round(with_receipts["readings_per_s"] / best[False]["readings_per_s"], 3),
        "receipts_per_1000_messages": round(with_receipts["receipt_messages"] * per_1000, 1),
        "receipt_bytes_per_1000_messages": round(with_receipts["receipt_bytes"] * per_1000),
        "readings_per_message": round(readings / max(1, with_receipts["agent_messages"]), 1),
        "exact": all(r["rows_stored"] == readings for r in runs),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="bridge workers (1-4)")
    parser.add_argument("--quick", action="store_true", help="30,000 readings, 1 round")
    parser.add_argument("--out", type=Path, help="also write the figures here")
    args = parser.parse_args()
    readings, rounds = (30_000, 1) if args.quick else (args.readings, args.rounds)
    result = run(readings, rounds, args.workers)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
