"""Modbus at scale: 200 simulated PLCs (real pymodbus servers, in one
subprocess: tests/edge/plc_fleet.py), each polled at 1 Hz for 10 registers,
5 of them dead or slow (2 refusing connections, 1 that never answers, 2 that
answer only after 1.2 s). Counted on the PLCs' side:

- every poll a PLC answered is in the spool, once, with its 10 values;
- the live PLCs' polls started on time: p99 jitter at most 100 ms as the
  agent measured it (edge_poll_jitter_seconds: from when a poll was due to
  when its request went out); and as the PLCs saw the requests arrive, the
  intervals between them are within 200 ms of 1 s at p99 (an interval is
  off by the difference of two polls' lateness);
- the 10 registers (0-4 and 6-10, max_gap = 1) took one request a poll;
- the slow PLCs' overruns are counted, the dead ones are marked down and
  retried, and none of them delayed the others.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from edge_agent.collect.modbus import plan
from edge_agent.collect.registers import RegisterSpec
from tests.conftest import ROOT
from tests.edge.harness import Agent, uplink_toml
from tests.edge.plc import Plc, SilentPlc
from tests.integration.harness import free_port_block, wait_until

LIVE, SLOW, SILENT, REFUSED = 195, 2, 1, 2
ADDRESSES = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # 10 registers, one unmapped between


def device_toml(device_id: str, port: int, timeout: float) -> str:
    out = (
        f'\n[[modbus.devices]]\ndevice_id = "{device_id}"\nhost = "127.0.0.1"\nport = {port}\n'
        f"poll_interval_s = 1.0\ntimeout_s = {timeout}\nbackoff_max_s = 4.0\nmax_gap = 1\n"
    )
    for a in ADDRESSES:
        out += f'[[modbus.devices.registers]]\nmetric = "r{a}"\naddress = {a}\n'
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def histogram_p99_within(metrics: dict[str, float], name: str, bound: str) -> tuple[float, float]:
    """(observations, fraction at or below ``bound`` seconds) of a histogram."""
    total = metrics[f'{name}_count{{collector="modbus"}}']
    within = metrics[f'{name}_bucket{{collector="modbus",le="{bound}"}}']
    return total, within / total


def check_stored(
    agent: Agent,
    *,
    devices: dict[str, int],
    served: dict[int, dict[str, Any]],
    ports: dict[str, list[int]],
    health: dict[str, Any],
    metrics: dict[str, float],
) -> dict[str, int]:
    """Every poll a PLC answered is in the spool, once, with its 10 values;
    returns the polls stored by device."""
    db = sqlite3.connect(agent.spool)
    rows = db.execute("SELECT device_id, time_us, metric, value FROM readings").fetchall()
    db.close()
    by_poll: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for device_id, time_us, metric, value in rows:
        assert metric not in by_poll[(device_id, time_us)], "a reading spooled twice"
        by_poll[(device_id, time_us)][metric] = value
    stored: dict[str, int] = defaultdict(int)
    for (device_id, _), values in by_poll.items():
        assert len(values) == len(ADDRESSES)
        stored[device_id] += 1
    answering = [d for d in devices if d.startswith(("live", "slow"))]
    for device_id in answering:
        assert stored[device_id] == served[devices[device_id]]["answered"] > 0, device_id
    for device_id in devices:
        if device_id.startswith(("silent", "refused")):
            assert stored[device_id] == 0
            assert health["devices"][device_id]["up"] is False
            assert metrics[f'edge_device_errors_total{{device="{device_id}"}}'] >= 3
    # The values are the PLC's: 100 * its index + address, in order of the fleet's ports.
    index = {p: i for i, p in enumerate(ports["live"])}
    for (device_id, _), values in list(by_poll.items())[:500]:
        if device_id.startswith("live"):
            i = index[devices[device_id]]
            assert values == {f"r{a}": float(100 * i + a) for a in ADDRESSES}

    return stored


def test_200_plcs_at_1_hz_with_5_dead_or_slow(tmp_path: Path) -> None:
    # One request covers the map only because max_gap lets it read register 5.
    specs = [RegisterSpec(metric=f"r{a}", address=a) for a in ADDRESSES]  # type: ignore[call-arg]
    assert len(plan(specs, max_gap=1)) == 1
    assert len(plan(specs, max_gap=0)) == 2

    ready, stats = tmp_path / "ready.json", tmp_path / "stats.json"
    fleet = subprocess.Popen(
        [
            sys.executable, "-m", "tests.edge.plc_fleet",
            "--live", str(LIVE), "--slow", str(SLOW), "--slow-delay", "1.2",
            "--silent", str(SILENT), "--ready", str(ready), "--stats", str(stats),
        ],
        cwd=ROOT,
    )  # fmt: skip
    agent: Agent | None = None
    try:
        wait_until(ready.exists, 60, "the PLC fleet")
        ports = json.loads(ready.read_text())
        refused = [free_port_block(1) for _ in range(REFUSED)]
        devices: dict[str, int] = {}
        config = uplink_toml(free_port_block(1), "t/{site_id}/{device_id}")  # offline: all spooled
        kinds = (
            [("live", p, 1.0) for p in ports["live"]]
            + [("slow", p, 2.0) for p in ports["slow"]]
            + [("silent", p, 1.0) for p in ports["silent"]]
            + [("refused", p, 1.0) for p in refused]
        )
        for n, (kind, port, timeout) in enumerate(kinds):
            device_id = f"{kind}-{n:03d}"
            devices[device_id] = port
            config += device_toml(device_id, port, timeout)
        agent = Agent(tmp_path, config)
        agent.start("run")
        # Beside the agent: how late this shared machine wakes any process.
        probe = subprocess.Popen(
            [sys.executable, "-m", "tests.edge.lateness_probe", "20"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )

        def fewest_polls() -> float:
            """Of the live PLCs, the fewest polls answered (one scrape of /metrics)."""
            assert agent is not None
            metrics = agent.metrics()
            return min(
                metrics.get(f'edge_modbus_polls_total{{device="{d}"}}', 0.0) for d in live_ids
            )

        live_ids = [d for d in devices if d.startswith("live")]
        # Scrape /metrics seldom: it is work for the agent too.
        wait_until(
            lambda: fewest_polls() >= 20,
            120,
            "20 polls of every live PLC",
            every=2.0,
        )
        metrics = agent.metrics()
        health = agent.status()
        assert agent.proc is not None
        cpu = {"agent": cpu_seconds(agent.proc.pid), "PLCs": cpu_seconds(fleet.pid)}
        machine = json.loads(probe.communicate(timeout=60)[0])
        assert agent.stop() == 0  # finishes the polls under way
    finally:
        if agent is not None:
            agent.kill()
        fleet.terminate()
        fleet.wait(30)
    served = {int(p): s for p, s in json.loads(stats.read_text()).items()}

    stored = check_stored(
        agent, devices=devices, served=served, ports=ports, health=health, metrics=metrics
    )
    answering = [d for d in devices if d.startswith(("live", "slow"))]

    # One request a poll: what the agent reports, and what the PLCs received.
    for device_id in answering:
        assert metrics[f'edge_modbus_requests_per_poll{{device="{device_id}"}}'] == 1
        assert len(served[devices[device_id]]["arrivals"]) == served[devices[device_id]]["answered"]
    total_polls = sum(stored.values())
    total_requests = sum(len(served[devices[d]]["arrivals"]) for d in answering)
    assert total_requests == total_polls

    # On time: p99 jitter of the live PLCs' polls at most 100 ms.
    observed, within = histogram_p99_within(metrics, "edge_poll_jitter_seconds", "0.1")
    buckets = {
        le: metrics[f'edge_poll_jitter_seconds_bucket{{collector="modbus",le="{le}"}}'] / observed
        for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25")
    }
    commits = metrics["edge_modbus_commit_seconds_count"]
    slow_commits = {
        f">{le}s": commits - metrics[f'edge_modbus_commit_seconds_bucket{{le="{le}"}}']
        for le in ("0.025", "0.05", "0.1", "0.25")
    }
    print(
        f"\nload average {Path('/proc/loadavg').read_text().split()[:3]}, CPU seconds {cpu}, "
        f"jitter at or below (s): {buckets}; a 5 ms sleeper beside it woke late by {machine}; "
        f"{commits:.0f} spool commits, of which slower than: {slow_commits}"
    )
    assert observed >= 19 * LIVE  # 20 polls each, the first (connecting) not a scheduled one
    assert within >= 0.99, (
        f"only {within:.2%} of polls started within 100 ms; meanwhile a process that only "
        f"sleeps 5 ms at a time woke late by {machine} on this machine (load average "
        f"{Path('/proc/loadavg').read_text().split()[:3]}), and of the agent's {commits:.0f} "
        f"spool commits (the event loop waits for the disk) these many took longer than: "
        f"{slow_commits}"
    )
    # As the PLCs saw it: an interval between two requests is off by the
    # difference of two polls' lateness (and by the PLC process's own delays
    # on this shared machine), so its bound is twice the jitter's.
    deviations = []
    for device_id in live_ids:
        arrivals = sorted(served[devices[device_id]]["arrivals"])
        deviations += [abs(b - a - 1.0) for a, b in itertools.pairwise(arrivals)]
    assert p99(deviations) <= 0.2, (
        f"p99 of the PLCs' request intervals off by {p99(deviations):.3f} s"
    )
    # The slow PLCs overran their 1 s interval; their skipped slots are counted.
    for device_id in (d for d in devices if d.startswith("slow")):
        assert metrics[f'edge_poll_overruns_total{{device="{device_id}"}}'] >= 5
    print(
        f"200 PLCs: {total_polls} polls stored = answered; agent jitter within 100 ms: "
        f"{within:.2%} of {observed:.0f}; PLC-side p99 interval deviation "
        f"{p99(deviations) * 1000:.1f} ms; max {max(deviations) * 1000:.1f} ms"
    )
    assert "Traceback" not in agent.log()


def test_silent_plcs_never_take_a_live_plcs_slot(tmp_path: Path) -> None:
    """8 PLCs that never answer (1 s timeout) and 2 that do, polled at 10 Hz,
    with 4 slots: after their first timeout the silent ones retry in their
    own pool (1 slot), waiting on each other; the live ones keep their
    schedule."""
    live = [Plc().start() for _ in range(2)]
    silent = [SilentPlc() for _ in range(8)]
    config = uplink_toml(free_port_block(1), "t/{site_id}/{device_id}")
    config += "[modbus]\nmax_concurrent = 4\n"
    for n, plc in enumerate(silent):
        config += device_toml(f"silent-{n}", plc.port, 1.0).replace(
            "poll_interval_s = 1.0", "poll_interval_s = 0.1"
        )
    for n, plc in enumerate(live):
        config += device_toml(f"live-{n}", plc.port, 1.0).replace(
            "poll_interval_s = 1.0", "poll_interval_s = 0.1"
        )
    agent = Agent(tmp_path, config)
    try:
        agent.start("run")

        def polls() -> list[float]:
            m = agent.metrics()
            return [m.get(f'edge_modbus_polls_total{{device="live-{n}"}}', 0.0) for n in range(2)]

        wait_until(lambda: min(polls()) >= 50, 60, "50 polls of each live PLC", every=0.5)
        metrics = agent.metrics()
        assert agent.stop() == 0
    finally:
        agent.kill()
        for plc in live:
            plc.stop()
        for quiet in silent:
            quiet.stop()
    observed, within = histogram_p99_within(metrics, "edge_poll_jitter_seconds", "0.1")
    assert observed >= 2 * 49  # the live PLCs' scheduled polls (the first, connecting, is not one)
    assert within >= 0.99, f"only {within:.2%} of the live polls started within 100 ms"
    for n in range(8):
        assert metrics[f'edge_device_errors_total{{device="silent-{n}"}}'] >= 1
        assert metrics[f'edge_modbus_polls_total{{device="silent-{n}"}}'] == 0
