"""Bridge processes on three simulated hosts consume one share group from a
broker on a fourth (network namespaces joined by veth pairs, made and
removed here; root only, skipped with the reason otherwise).

A host's link is cut mid-stream and its bridge dies with it. What the broker
had given that worker (unacked) and what it keeps giving its offline session
waits under its client id; then either a replacement with the same worker
id on a new host picks it up (a StatefulSet restarting pod bridge-1
elsewhere), or, with no replacement, `bridge retire --worker 1` frees it.
Either way every point is stored exactly once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Stack
from tests.hosts.netns import Hosts, why_not
from tests.integration.harness import (
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    free_port_block,
    seed_fleet,
    wait_until,
)

REASON = why_not()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
HTTP_PORT = 9108  # inside each host's own namespace


class Fleet:
    def __init__(self, stack: Stack, scenario: Scenario, tmp: Path) -> None:
        self.stack, self.scenario, self.tmp = stack, scenario, tmp
        self.net = Hosts()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.health: dict[str, int] = {}
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            "user root\nlistener 1883\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 5000\nmax_queued_messages 1000000\nmax_queued_bytes 0\n"
            f"log_dest file {tmp / 'mosquitto.log'}\nconnection_messages true\n"
        )
        self._spawn("broker", self.net.broker, ["mosquitto", "-c", str(conf)])
        self.mqtt_port = self.net.forward(None, free_port_block(1), self.net.broker, 1883)

    def _spawn(self, name: str, ns: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], stdout=log, stderr=log, env=env, cwd=ROOT
        )
        self.procs[name] = proc
        return proc

    def host(self, i: int) -> str:
        ns = self.net.add_host(i)
        self.net.forward(ns, self.stack.pg_port, None, self.stack.pg_port)
        self.net.forward(ns, self.stack.redis_port, None, self.stack.redis_port)
        self.health[ns] = self.net.forward(None, free_port_block(1), ns, HTTP_PORT)
        return ns

    def config(self, i: int) -> Path:
        path = self.scenario.write_config(HTTP_PORT)
        text = path.read_text().replace(
            'host = "127.0.0.1"\nport = ' + str(self.stack.mqtt_port),
            f'host = "{self.net.broker_address(i)}"\nport = 1883\nkeepalive_s = 5',
        )
        assert "keepalive_s = 5" in text
        out = self.tmp / f"bridge-host{i}.toml"
        out.write_text(text)
        return out

    def bridge(self, host: int, worker: int, *command: str) -> subprocess.Popen[bytes]:
        ns = self.net.hosts[host]
        argv = [sys.executable, "-m", "bridge.cli", "--config", str(self.config(host))]
        return self._spawn(
            f"bridge-h{host}-w{worker}", ns, [*argv, *(command or ("run", "--worker", str(worker)))]
        )

    def get(self, host: int, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.health[self.net.hosts[host]]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def ready(self, host: int) -> bool:
        return self.get(host, "/readyz")[0] == 200

    def received(self, host: int) -> float:
        status, body = self.get(host, "/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith("bridge_messages_received_total "):
                return float(line.split()[1])
        return 0.0

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.net.remove()


@pytest.fixture
def fleet(stack: Stack, plain_db: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(stack, Scenario(stack, plain_db, tmp_path), tmp_path)
    yield f
    f.close()


def run_until_cut(fleet: Fleet) -> tuple[set[tuple[str, str, int]], threading.Thread, Publisher]:
    """Three hosts, workers 0-2; publishes 3,000 messages at 250/s and, a
    third of the way, cuts host 1's link and kills its bridge."""
    for i in range(3):
        fleet.host(i)
        fleet.bridge(i, i)
    for i in range(3):
        wait_until(lambda i=i: fleet.ready(i), 60, f"bridge on host {i} ready")  # type: ignore[misc]
    messages, expected = seed_fleet(fleet.scenario, devices=30, readings=100)
    publisher = Publisher(dataclasses.replace(fleet.stack, mqtt_port=fleet.mqtt_port))
    sender = threading.Thread(target=publisher.publish_all, args=(messages,), kwargs={"rate": 250})
    sender.start()
    db = fleet.scenario.db_url
    wait_until(lambda: count_rows(db) >= len(expected) // 3, 60, "a third stored")
    assert fleet.received(1) > 0, "host 1's worker took no share before the cut"
    fleet.net.cut(1)
    fleet.procs["bridge-h1-w1"].send_signal(signal.SIGKILL)  # the host is gone
    return expected, sender, publisher


def finish(
    fleet: Fleet,
    expected: set[tuple[str, str, int]],
    sender: threading.Thread,
    publisher: Publisher,
) -> None:
    sender.join(120)
    publisher.wait_acked()
    publisher.close()
    db = fleet.scenario.db_url
    wait_until(lambda: count_rows(db) >= len(expected), 120, "every point stored")
    assert_exactly_once(db, expected)


def test_a_replacement_with_the_same_worker_id(fleet: Fleet) -> None:
    expected, sender, publisher = run_until_cut(fleet)
    db = fleet.scenario.db_url
    sender.join(120)
    # Host 1's share of the rest waits at the broker: nothing else stores it.
    stalled = count_rows(db)
    assert stalled < len(expected)
    fleet.host(3)
    fleet.bridge(3, 1)  # pod bridge-1, rescheduled on another node
    wait_until(lambda: fleet.ready(3), 60, "the replacement ready")
    finish(fleet, expected, sender, publisher)
    assert fleet.received(3) > 0


def test_retire_without_a_replacement(fleet: Fleet) -> None:
    expected, sender, publisher = run_until_cut(fleet)
    sender.join(120)
    assert count_rows(fleet.scenario.db_url) < len(expected)
    retire = fleet.bridge(0, 1, "retire", "--worker", "1", "--idle", "2")
    assert retire.wait(120) == 0, fleet.log("bridge-h0-w1")
    finish(fleet, expected, sender, publisher)
