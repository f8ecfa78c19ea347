"""Live first: with a backlog in the spool draining at a limited rate, new
readings do not wait behind it; and in the end everything arrives once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from core.types import Point
from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from edge_agent.spool import Spool
from tests.conftest import Stack
from tests.edge.harness import Agent, keys, uplink_toml
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    wait_until,
)

BACKLOG = 60_000
DRAIN_RATE = 6_000  # readings/s: the backlog takes about 10 s


def backlog_stored(db_url: str) -> int:
    async def q() -> int:
        conn = await asyncpg.connect(db_url)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM telemetry WHERE device_id LIKE 'old-%'")
            )
        finally:
            await conn.close()

    return asyncio.run(q())


def test_live_readings_overtake_a_rate_limited_backlog(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    start = time.time()
    simulator = SimulatorSettings(  # type: ignore[call-arg]
        devices=5, rate=2.0, seed=5, start=start, duration_s=8.0
    )
    agent = Agent(
        tmp_path,
        uplink_toml(
            stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"), drain_rate=DRAIN_RATE
        )
        + f"\n[simulator]\ndevices = 5\nrate = 2.0\nseed = 5\nstart = {start!r}\nduration_s = 8.0\n",
    )
    # What an outage left behind: an hour-old backlog, already in the spool.
    old_us = time.time_ns() // 1000 - 3_600_000_000
    backlog = [Point(old_us + i, f"old-{i % 100:03d}", "pip", float(i)) for i in range(BACKLOG)]
    spool = Spool(agent.spool, max_readings=1_000_000)
    spool.append(backlog)
    spool.close()

    fleet = Fleet(simulator, round(start * 1_000_000))
    last = fleet.last_tick
    assert last is not None
    live = [r for tick in range(last + 1) for r in fleet.readings(tick)]
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("simulate")
            # The first live readings arrive while most of the backlog still waits.
            wait_until(
                lambda: count_rows(plain_db) - backlog_stored(plain_db) >= 30, 30, "live readings"
            )
            drained_when_live_arrived = backlog_stored(plain_db)
            wait_until(lambda: count_rows(plain_db) >= BACKLOG + len(live), 90, "everything")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
    assert drained_when_live_arrived < BACKLOG / 2, drained_when_live_arrived
    assert_exactly_once(plain_db, keys(backlog) | keys(live))
