"""Fixtures for the real services: the test instance of the local stack
(scripts/stack.sh up test, its own ports), a fresh database per test cloned
from a migrated template, and a flushed Redis.

Cloning a template takes a few tens of milliseconds, so every test that
touches the database gets its own and tests cannot leak into each other.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from bridge.config import DatabaseSettings
from bridge.db.migrate import migrate, timescale_info

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "scripts" / "stack.sh"


@dataclass(frozen=True)
class Stack:
    pg_port: int
    redis_port: int
    mqtt_port: int
    timescaledb: str | None  # why TimescaleDB tests skip, or None when they can run

    def pg_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{dbname}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def stack_env() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(STACK), "env", "test"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _admin(stack: Stack, sql: str) -> None:
    conn = await asyncpg.connect(stack.pg_url())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _make_template(stack: Stack, name: str, mode: str) -> None:
    await _admin(
        stack,
        f"UPDATE pg_database SET datistemplate = false WHERE datname = '{name}'",
    )
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(stack, f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(stack.pg_url(name))
    try:
        await migrate(conn, DatabaseSettings().migrations_dir, mode, retention_days=90)
        if mode == "timescaledb":
            # The scheduler runs every policy the moment a clone appears, at
            # the same time as the test; a refresh racing the test's own made
            # rollup checks flaky. Tests refresh and compress explicitly.
            await conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
            )
    finally:
        await conn.close()
    # TimescaleDB's scheduler keeps a connection to every database with the
    # extension; a template must have none, so close it to connections.
    await _admin(stack, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true')
    await _admin(
        stack,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
        "AND pid <> pg_backend_pid()",
    )


async def _timescale_skip_reason(stack: Stack) -> str | None:
    conn = await asyncpg.connect(stack.pg_url())
    try:
        info = await timescale_info(conn)
    finally:
        await conn.close()
    if info.available is None:
        return (
            "TimescaleDB is not installed on this machine (no timescaledb extension in "
            "PostgreSQL); install it for PostgreSQL's major version to run these tests"
        )
    if not info.preloaded:
        return (
            "TimescaleDB is installed but not preloaded by the test PostgreSQL: "
            "`bash scripts/stack.sh up test` (run by `make test`) restarts it preloaded"
        )
    return None


@pytest.fixture(scope="session")
def stack() -> Stack:
    """Starts (or reuses) the test instances of Mosquitto, PostgreSQL and Redis."""
    subprocess.run(["bash", str(STACK), "up", "test"], check=True)
    env = stack_env()
    base = Stack(
        pg_port=int(env["BRIDGE_DATABASE__URL"].rsplit(":", 1)[1].split("/")[0]),
        redis_port=int(env["BRIDGE_REDIS__URL"].rsplit(":", 1)[1].split("/")[0]),
        mqtt_port=int(env["BRIDGE_MQTT__PORT"]),
        timescaledb=None,
    )
    reason = run(_timescale_skip_reason(base))
    return Stack(base.pg_port, base.redis_port, base.mqtt_port, reason)


@pytest.fixture(scope="session")
def templates(stack: Stack) -> dict[str, str]:
    """Migrated template databases, by mode: always plain, timescaledb when present."""
    names = {"plain": "tpl_plain"}
    if stack.timescaledb is None:
        names["timescaledb"] = "tpl_timescaledb"
    for mode, name in names.items():
        run(_make_template(stack, name, mode))
    return names


def _clone(stack: Stack, template: str | None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    run(_admin(stack, f'CREATE DATABASE "{name}"{source}'))
    try:
        yield stack.pg_url(name)
    finally:
        run(_admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_db(stack: Stack) -> Iterator[str]:
    """URL of a new, empty database."""
    yield from _clone(stack, None)


@pytest.fixture
def plain_db(stack: Stack, templates: dict[str, str]) -> Iterator[str]:
    """URL of a new database migrated in plain PostgreSQL mode."""
    yield from _clone(stack, templates["plain"])


@pytest.fixture
def tsdb_db(stack: Stack, templates: dict[str, str]) -> Iterator[str]:
    """URL of a new database migrated in TimescaleDB mode; skips when it is absent."""
    if stack.timescaledb is not None:
        pytest.skip(stack.timescaledb)
    yield from _clone(stack, templates["timescaledb"])


@pytest.fixture(params=["plain", "timescaledb"])
def any_db(
    request: pytest.FixtureRequest, stack: Stack, templates: dict[str, str]
) -> Iterator[str]:
    """URL of a migrated database, once per mode (TimescaleDB skipped when absent)."""
    if request.param == "timescaledb" and stack.timescaledb is not None:
        pytest.skip(stack.timescaledb)
    yield from _clone(stack, templates[request.param])


@pytest.fixture
def redis_url(stack: Stack) -> str:
    """URL of the test Redis, emptied for this test."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=stack.redis_port)
    try:
        client.flushall()
    finally:
        client.close()
    return stack.redis_url
