"""The evaluator as a process, an MQTT listener on the alerts topic, and the
alarms as stored: for the end-to-end alarm tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.alarms import store
from bridge.alarms.rules import parse_rule
from bridge.alarms.service import Evaluator
from bridge.config import (
    AlarmSettings,
    DatabaseSettings,
    HttpSettings,
    MqttSettings,
    RedisSettings,
    Settings,
)
from tests.conftest import ROOT, Stack, run
from tests.integration.harness import Scenario, free_port_block, wait_until


async def store_rules(db_url: str, rules: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for rule in rules:
            await store.upsert_rule(conn, parse_rule(rule))
    finally:
        await conn.close()


def in_process_settings(
    stack: Stack, db_url: str, redis_url: str, prefix: str, **alarms: Any
) -> Settings:
    """Settings for an Evaluator run in the test's own process, on its own
    stream (the Redis prefix)."""
    return Settings(  # type: ignore[call-arg]
        database=DatabaseSettings(url=db_url),  # type: ignore[call-arg]
        redis=RedisSettings(url=redis_url, prefix=prefix),  # type: ignore[call-arg]
        mqtt=MqttSettings(port=stack.mqtt_port, client_id=f"eval-{prefix[:-1]}"),  # type: ignore[call-arg]
        http=HttpSettings(port=0),  # type: ignore[call-arg]
        alarms=AlarmSettings(enabled=True, http_port=0, **alarms),
    )


@contextlib.asynccontextmanager
async def running(evaluator: Evaluator) -> AsyncIterator[asyncio.Task[None]]:
    """The evaluator's run as a task, stopped (and awaited) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(evaluator.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def alarm_settings(scenario: Scenario, port: int, **more: Any) -> str:
    values = {"reorder_s": 0.5, "flush_s": 0, "tick_s": 0.2, "rules_refresh_s": 0.5} | more
    lines = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    return (
        f'\n[alarms]\nenabled = true\ntopic_prefix = "{scenario.tag}/alerts"\n'
        f'client_id = "a{scenario.tag}"\nhttp_port = {port}\n{lines}'
    )


def seed_rules(config: Path, rules_toml: str, tmp: Path) -> None:
    from bridge.cli import main

    path = tmp / f"rules-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(rules_toml)
    assert main(["--config", str(config), "alarms", "seed", str(path)]) == 0


class EvaluatorProcess:
    def __init__(self, config: Path, tmp: Path) -> None:
        self.config = config
        self.log_path = tmp / f"alarms-{uuid.uuid4().hex[:4]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EvaluatorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        argv = [sys.executable, "-m", "bridge.cli", "--config", str(self.config), "alarms", "run"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=ROOT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(timeout=30)


class AlertListener:
    """Subscribes to <prefix>/# and keeps every message (QoS 1)."""

    def __init__(self, stack: Stack, topic_filter: str) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"l-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, 10, "alerts subscription")

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, orjson.loads(msg.payload)))

    def transitions(self, device: str) -> list[tuple[str, int]]:
        with self._lock:
            return [
                (b["transition"], b["id"]) for _, b in self.messages if b["device_id"] == device
            ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def alarms(db_url: str) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(db_url)
        try:
            rows = await conn.fetch("SELECT * FROM alerts ORDER BY id")
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    return run(fetch())  # type: ignore[no-any-return]


def evaluator_port() -> int:
    return free_port_block(1)
