"""The edge side installs alone.

A fresh virtualenv gets ``mqtt-bridge[edge]`` and nothing else: a regular
(not editable) install of a copy of this working tree, by pip with this
machine's pip configuration, dependencies resolved as a gateway would resolve
them (pip's cache makes it quick). Then: no cloud package is in it, the
``bridge`` command says in one line what to install, and that venv's
``edge-agent simulate`` delivers a deterministic fleet's readings to the test
broker, each exactly once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.codec import CODECS, DecodeContext
from core.limits import Limits
from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from tests.conftest import ROOT, Stack
from tests.edge.harness import Agent, uplink_toml
from tests.integration.harness import wait_until

CLOUD_ONLY = ("asyncpg", "redis", "litestar", "uvicorn", "httptools", "aiomqtt", "uvloop")
EDGE_NEEDS = ("core", "edge_agent", "paho", "pymodbus", "prometheus_client", "pydantic")


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with mqtt-bridge[edge] installed from this working tree."""
    root = tmp_path_factory.mktemp("edge-install")
    # A copy, so building the wheel leaves nothing in the working tree.
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("core", "bridge", "edge_agent"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This venv's pip installs into the new one: no pip bootstrap there.
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    installed = subprocess.run(
        [*pip, "install", "--quiet", "--disable-pip-version-check", f"{src}[edge]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def _importable(venv: Path, modules: tuple[str, ...]) -> dict[str, str | None]:
    """Where each module would be imported from in ``venv`` (None: not importable),
    run outside the working tree so only the venv's own packages count."""
    code = (
        "import importlib.util, json, sys\n"
        "specs = {m: importlib.util.find_spec(m) for m in sys.argv[1:]}\n"
        "print(json.dumps({m: s and s.origin for m, s in specs.items()}))\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    ).stdout
    result: dict[str, str | None] = json.loads(out)
    return result


def test_the_edge_side_brings_no_cloud_package(edge_venv: Path) -> None:
    found = _importable(edge_venv, CLOUD_ONLY + EDGE_NEEDS)
    assert {m: found[m] for m in CLOUD_ONLY} == dict.fromkeys(CLOUD_ONLY)
    site = str(edge_venv / "lib")
    for module in EDGE_NEEDS:  # there, and the venv's own copy (not the working tree)
        origin = found[module]
        assert origin is not None, f"{module} is not installed"
        assert origin.startswith(site), f"{module} comes from {origin}"


def test_bridge_without_the_cloud_side_says_what_to_install(edge_venv: Path) -> None:
    done = subprocess.run(
        [str(edge_venv / "bin" / "bridge"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=edge_venv,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bridge: error: the cloud side of mqtt-bridge is not installed")
    assert "asyncpg" in lines[0]
    assert lines[0].endswith("pip install 'mqtt-bridge[cloud]'")


def test_the_install_knows_which_side_it_has(edge_venv: Path) -> None:
    code = "import json; from core import extras; print(json.dumps([extras.missing(s) for s in ('edge', 'cloud')]))"
    out = subprocess.run(
        [str(edge_venv / "bin" / "python"), "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=edge_venv,
    ).stdout
    edge, cloud = json.loads(out)
    assert edge == []
    assert {"aiomqtt", "asyncpg", "httptools", "litestar", "redis", "uvicorn", "uvloop"} <= set(
        cloud
    )


class Subscriber:
    """Every message under ``prefix/#`` on the test broker, at QoS 1."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        wait_until(self._subscribed.is_set, 10, "SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def barrier(self) -> None:
        """Returns once the broker has delivered to us everything it took before
        now: a marker we publish ourselves comes back behind it."""
        marker = f"{self.prefix}/barrier/{uuid.uuid4().hex}"
        self._client.publish(marker, b"", qos=1)
        wait_until(lambda: any(t == marker for t, _ in self.received()), 10, "the barrier")
        with self._lock:
            self.messages = [m for m in self.messages if m[0] != marker]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscriber(stack: Stack) -> Iterator[Subscriber]:
    sub = Subscriber(stack.mqtt_port, f"pkg-{uuid.uuid4().hex[:8]}")
    yield sub
    sub.close()


def test_the_edge_side_alone_delivers_a_simulated_fleet(
    edge_venv: Path, stack: Stack, subscriber: Subscriber, tmp_path: Path
) -> None:
    # A fleet whose whole run lies in the past: the agent generates every tick
    # at once (as after a restart), so what arrives is known exactly.
    start = time.time() - 30
    devices, rate, seed, duration = 5, 5.0, 7, 2.0
    simulator = SimulatorSettings(  # type: ignore[call-arg]
        devices=devices, rate=rate, seed=seed, start=start, duration_s=duration
    )
    fleet = Fleet(simulator, round(start * 1_000_000))
    assert fleet.last_tick is not None
    expected = sorted(
        (p.device_id, p.metric, p.time_us, p.value)
        for tick in range(fleet.last_tick + 1)
        for p in fleet.readings(tick)
    )
    assert expected, "the simulated fleet produced nothing"

    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, f"{subscriber.prefix}/{{site_id}}/{{device_id}}")
        + f"\n[simulator]\nstart = {start!r}\n",
        program=[str(edge_venv / "bin" / "edge-agent")],
    )
    argv = ["simulate", "--devices", str(devices), "--rate", str(rate)]
    argv += ["--seed", str(seed), "--duration", str(duration)]
    try:
        agent.start(*argv)
        wait_until(
            lambda: sum(len(_decode(t, p)) for t, p in subscriber.received()) >= len(expected),
            60,
            f"{len(expected)} readings at the subscriber",
        )
        wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
        assert agent.stop() == 0, agent.log()[-3000:]
    finally:
        agent.kill()
    subscriber.barrier()  # anything sent twice would be here by now

    received = sorted(r for t, p in subscriber.received() for r in _decode(t, p))
    assert len(received) == len(expected)
    assert received == expected
    assert {t.split("/")[1] for t, _ in subscriber.received()} == {"site-1"}


def _decode(topic: str, payload: bytes) -> list[tuple[str, str, int, float]]:
    device_id = topic.rsplit("/", 1)[1]
    ctx = DecodeContext(device_id, None, time.time_ns() // 1000, Limits())
    decoded = CODECS["seed_json"].decode(payload, ctx)
    assert not decoded.rejects, decoded.rejects
    return [(p.device_id, p.metric, p.time_us, p.value) for p in decoded.points]
