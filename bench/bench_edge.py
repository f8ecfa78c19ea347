"""The edge agent's forwarding: spool to broker, in readings (points) per second.

Fills a spool with a backlog of readings (1000 devices x 3 metrics, as a
fleet would leave it after an outage), starts a private Mosquitto (port
31893, persistence off, the local stack's limits) with a subscriber that
counts what arrives (so the broker answers PUBACK "success", not 0x10), then
starts `edge-agent run` on the spool and times the drain until the spool is
empty, sampling its depth every 0.25 s:

- drain_unlimited:  uplink.drain_rate = 0, the agent as fast as it goes: the
                    publish throughput and the drain time of the backlog;
- drain_default:    the default drain_rate (50,000 readings/s), to show the
                    limit holds (live readings would get the rest);
- spool_write:      the rate of filling the spool (the collectors' side), and
                    the spool's bytes per reading on disk.

Then bench_opcua.py measures the field side: OPC UA value changes per second
through the agent to the spool and on to the database (a real bridge and
PostgreSQL), and 200 Modbus PLCs polled at 1 Hz (jitter, requests per poll,
every answered poll stored).

Everything (the agent, Mosquitto, the subscriber, this script) shares this
machine's cores; the CPU each used is reported next to each figure.

    .venv/bin/python bench/bench_edge.py [--readings 1000000] [--quick]
                                         [--only drain,opcua,modbus,receipts]

Then bench_receipts.py measures agent to database (a real bridge and
PostgreSQL) with commit receipts off and on, taking turns in the same run,
and the receipts' traffic per 1,000 messages (``receipts``).

``--only`` runs some parts and keeps the other parts' figures from the last
edge.json.

Prints the machine and the figures; writes bench/results/edge.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.types import Point
from edge_agent.spool import Spool

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "edge.json"
MQTT_PORT, STATUS_PORT = 31893, 39120
DEVICES = 1000
METRICS = ("flow_rate", "pip", "temperature")


def cpu_seconds(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = text[text.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "mosquitto": mosquitto,
        "paho_mqtt": version("paho-mqtt"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "asyncua": version("asyncua"),
        "pymodbus": version("pymodbus"),
        "shared": "every process of the bench shares these cores: the agent, Mosquitto, "
        "the subscriber and this script",
    }


def fill(path: Path, readings: int) -> dict[str, Any]:
    """A spool holding ``readings`` readings of a 1000-device fleet, oldest first."""
    spool = Spool(path, max_readings=readings + 1)
    base_us = time.time_ns() // 1000 - 3_600_000_000
    per_tick = DEVICES * len(METRICS)
    started = time.perf_counter()
    tick = 0
    while spool.depth < readings:
        batch = [
            Point(base_us + tick * 1_000_000, f"esp-{d:04d}", m, 1000.0 + (tick * 7 + d) % 500)
            for d in range(DEVICES)
            for m in METRICS
        ][: readings - spool.depth]
        spool.append(batch)
        tick += 1
    elapsed = time.perf_counter() - started
    size = spool.file_bytes()
    spool.close()
    return {
        "readings": readings,
        "seconds": round(elapsed, 2),
        "readings_per_s": round(readings / elapsed),
        "transaction_readings": per_tick,
        "bytes": size,
        "bytes_per_reading": round(size / readings, 1),
    }


class Subscriber:
    """Counts messages on bench/#, at QoS 0 so the broker never waits for it."""

    def __init__(self) -> None:
        self.messages = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("bench/#", qos=0)
        self.client.connect("127.0.0.1", MQTT_PORT)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.05)


def health() -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{STATUS_PORT}/healthz", timeout=2) as r:
            return dict(json.loads(r.read()))
    except OSError:
        return None


def drain(tmp: Path, template: Path, readings: int, drain_rate: float, name: str) -> dict[str, Any]:
    spool = tmp / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{template}{suffix}")
        if src.exists():
            Path(f"{spool}{suffix}").write_bytes(src.read_bytes())
    config = tmp / f"{name}.toml"
    config.write_text(
        f'[spool]\npath = "{spool}"\nmax_readings = {readings + 1}\n'
        f"[status]\nport = {STATUS_PORT}\n"
        f'[uplink]\nport = {MQTT_PORT}\nclient_id = "bench-edge"\ntopic = "bench/{{site_id}}/{{device_id}}"\n'
        f"drain_rate = {drain_rate}\n"
    )
    subscriber = Subscriber()
    log = (tmp / f"{name}.log").open("wb")
    busy0 = machine_busy_seconds()
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "--config", str(config), "run"],
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    samples: list[tuple[float, int]] = []
    try:
        while True:
            h = health()
            now = time.monotonic() - started
            if h is not None:
                samples.append((now, h["spool"]["readings"]))
                if h["spool"]["readings"] == 0:
                    break
            if now > 900 or agent.poll() is not None:
                raise RuntimeError(f"{name}: the agent did not drain; see {log.name}")
            time.sleep(0.25)
        total = samples[-1][0] - samples[0][0]  # from the agent's first /healthz answer
        agent_cpu = cpu_seconds(agent.pid)
        busy = machine_busy_seconds() - busy0
    finally:
        agent.terminate()
        agent.wait(30)
        subscriber.close()
    # Steady rate: from the first sample at or below 90% of the backlog to the last
    # at or above 10%.
    first = next(s for s in samples if s[1] <= 0.9 * readings)
    last = [s for s in samples if s[1] >= 0.1 * readings][-1]
    steady = (first[1] - last[1]) / (last[0] - first[0]) if last[0] > first[0] else 0.0
    return {
        "drain_rate_setting": drain_rate,
        "readings": readings,
        "drain_seconds": round(total, 2),
        "drain_seconds_with_start": round(samples[-1][0], 2),
        "readings_per_s": round(readings / total),
        "steady_readings_per_s": round(steady),
        "messages_received": subscriber.messages,
        "readings_per_message": round(readings / max(1, subscriber.messages), 1),
        "cpu_percent_of_one_core": {
            "agent": round(100 * agent_cpu / samples[-1][0], 1),
            "whole machine": round(100 * busy / samples[-1][0], 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 readings")
    parser.add_argument(
        "--only",
        default="drain,opcua,modbus,receipts",
        help="parts to run (drain, opcua, modbus, receipts); the others keep their last figures",
    )
    args = parser.parse_args()
    readings = 100_000 if args.quick else args.readings
    only = set(args.only.split(","))
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}

    info = machine()
    print(
        f"machine: {info['nproc']} cores ({info['cpu']}), {info['memory_gb']} GB, "
        f"Python {info['python']}, {info['mosquitto']}"
    )
    print(f"         {info['shared']}")
    results: dict[str, Any] = {
        k: v
        for k, v in previous.items()
        if k in ("spool_write", "drain_unlimited", "drain_default")
    }
    if "drain" in only:
        results = drain_parts(readings)
    else:  # kept from the last run, which says when that was
        results["drain_measured"] = previous.get("drain_measured", previous.get("when"))
    import bench_opcua

    field = {k: v for k, v in previous.items() if k in ("opcua", "modbus_200", "receipts")}
    field.update(bench_opcua.run(only))
    if "receipts" in only:
        import bench_receipts

        field["receipts"] = {"measured": bench_opcua.now()} | bench_receipts.run(
            min(readings, 200_000), 2
        )
    out = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "settings": {
            "devices": DEVICES,
            "metrics": list(METRICS),
            "codec": "seed_json",
            "max_points_per_message": 500,
            "window": 2000,
        },
        **results,
        **field,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def drain_parts(readings: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as folder:
        tmp = Path(folder)
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {MQTT_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 5000\nmax_queued_messages 1000000\nmax_queued_bytes 0\n"
            "max_packet_size 4194304\nset_tcp_nodelay true\n"
        )
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        wait_for_port(MQTT_PORT)
        try:
            template = tmp / "backlog.db"
            print(f"filling a spool with {readings:,} readings...")
            write = fill(template, readings)
            print(
                f"  spool write: {write['readings_per_s']:,} readings/s in transactions of "
                f"{write['transaction_readings']}, {write['bytes_per_reading']} bytes/reading"
            )
            results: dict[str, Any] = {"spool_write": write}
            for name, rate in (("drain_unlimited", 0.0), ("drain_default", 50_000.0)):
                busy0 = cpu_seconds(broker.pid)
                res = drain(tmp, template, readings, rate, name)
                res["cpu_percent_of_one_core"]["mosquitto"] = round(
                    100 * (cpu_seconds(broker.pid) - busy0) / res["drain_seconds_with_start"], 1
                )
                results[name] = res
                print(
                    f"  {name}: {readings:,} readings drained in {res['drain_seconds']} s "
                    f"({res['readings_per_s']:,}/s overall, {res['steady_readings_per_s']:,}/s "
                    f"steady, {res['readings_per_message']} per message); CPU % of a core: "
                    f"{res['cpu_percent_of_one_core']}"
                )
        finally:
            broker.terminate()
            broker.wait(10)
    return results


if __name__ == "__main__":
    sys.exit(main())
