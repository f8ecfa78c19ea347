"""The local stack script: real services on the project's ports, idempotent."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import ROOT, STACK, Stack, run

SYSTEM_DEFAULT_PORTS = {1883, 5432, 6379}


def pids() -> dict[str, str]:
    state = ROOT / ".stack" / "test"
    files = {
        "redis": state / "redis" / "redis.pid",
        "mosquitto": state / "mosquitto" / "mosquitto.pid",
    }
    return {name: Path(f).read_text().strip() for name, f in files.items()}


def test_ports_are_the_projects_own(stack: Stack) -> None:
    assert SYSTEM_DEFAULT_PORTS.isdisjoint({stack.pg_port, stack.redis_port, stack.mqtt_port})
    dev = subprocess.run(
        ["bash", str(STACK), "env", "dev"], capture_output=True, text=True, check=True
    )
    # The dev instance (make run) and the test instance never share a port.
    for port in (stack.pg_port, stack.redis_port, stack.mqtt_port):
        assert f":{port}" not in dev.stdout
        assert f"={port}" not in dev.stdout


def test_starting_twice_changes_nothing(stack: Stack) -> None:
    before = pids()
    again = subprocess.run(
        ["bash", str(STACK), "up", "test"], capture_output=True, text=True, check=True
    )
    assert again.stderr.count("already running") == 3, again.stderr
    assert pids() == before


def test_postgres_preloads_timescaledb_exactly_when_installed(stack: Stack) -> None:
    import asyncpg

    async def preload() -> str:
        conn = await asyncpg.connect(stack.pg_url())
        try:
            return str(await conn.fetchval("SHOW shared_preload_libraries"))
        finally:
            await conn.close()

    libdir = subprocess.run(
        ["bash", "-c", "ls -d /usr/lib/postgresql/*/lib | sort -V | tail -n 1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    installed = any(Path(libdir).glob("timescaledb*.so"))
    assert ("timescaledb" in run(preload())) == installed


@pytest.mark.parametrize("round_", [1, 2])
def test_redis_is_empty_for_each_test(redis_url: str, round_: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-behind", round_)
    finally:
        client.close()


def test_mosquitto_delivers_qos1(stack: Stack) -> None:
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, msg: (got.append(msg.payload), received.set())
    sub.connect("127.0.0.1", stack.mqtt_port)
    sub.loop_start()
    try:
        sub.subscribe("stack-test/#", qos=1)
        assert subscribed.wait(10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", stack.mqtt_port)
        pub.loop_start()
        pub.publish("stack-test/x", b"42", qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        assert received.wait(10)
        assert got == [b"42"]
    finally:
        sub.loop_stop()
        sub.disconnect()
