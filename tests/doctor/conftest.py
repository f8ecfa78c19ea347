"""Fixtures for `bridge doctor` tests: settings pointing at the test stack,
and a Redis of the test's own, configured as the test needs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.config import Settings
from tests.conftest import Stack
from tests.integration.harness import Publisher, free_port_block, wait_until


def make_settings(
    stack: Stack, db_url: str, redis_url: str | None = None, **sections: Any
) -> Settings:
    values: dict[str, Any] = {
        "database": {"url": db_url, "pool_size": 2},
        "redis": {"url": redis_url or stack.redis_url},
        "mqtt": {"host": "127.0.0.1", "port": stack.mqtt_port, "client_id": "doctor-test"},
        "api": {"db_pool_size": 2},
    }
    for name, extra in sections.items():
        values[name] = {**values.get(name, {}), **extra}
    return Settings(**values)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts a Redis with the given redis-server arguments; returns its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> str:
        port = free_port_block(1)
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        client = redis.Redis(port=port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, 20, "own redis answers")
        client.close()
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def publisher(stack: Stack) -> Iterator[Publisher]:
    pub = Publisher(stack)
    yield pub
    pub.close()
