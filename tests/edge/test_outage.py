"""Uplink outage: the cloud broker is down for 60 s while the simulator runs,
the agent is kill -9ed and restarted in the middle of it, and afterwards every
generated reading is in the database exactly once.

What was generated is computed by the test from the simulator's settings
(the simulator is deterministic and keeps its clock in the spool, so a
killed-and-restarted run generates exactly what an uninterrupted one would),
never taken from the agent's counters.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from tests.conftest import Stack
from tests.edge.harness import Agent, keys, local_broker, uplink_toml
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    wait_until,
)

DEVICES = 20
RATE = 2.0  # readings per device per second, 3 signals each: ~120 points/s
OUTAGE_S = 60


def test_a_60s_outage_with_a_kill_9_in_it_loses_and_duplicates_nothing(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    broker = local_broker(tmp_path / "cloud")
    scenario = Scenario(stack, plain_db, tmp_path, mqtt_port=broker.ports[0])
    start = time.time()
    simulator = SimulatorSettings(  # type: ignore[call-arg]
        devices=DEVICES, rate=RATE, seed=7, start=start, duration_s=OUTAGE_S + 25.0
    )
    fleet = Fleet(simulator, round(start * 1_000_000))
    last = fleet.last_tick
    assert last is not None
    expected = keys([r for tick in range(last + 1) for r in fleet.readings(tick)])

    agent = Agent(
        tmp_path,
        uplink_toml(broker.ports[0], scenario.topic("{site_id}", "{device_id}"))
        + f"\n[simulator]\ndevices = {DEVICES}\nrate = {RATE}\nseed = 7\n"
        f"start = {start!r}\nduration_s = {OUTAGE_S + 25.0}\n",
    )
    broker.start()
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("simulate")
            wait_until(lambda: count_rows(plain_db) >= 500, 30, "readings flowing")

            broker.stop()  # SIGTERM: the uplink is gone
            stopped_at = time.monotonic()
            stored_at_stop = count_rows(plain_db)
            wait_until(lambda: not agent.status()["uplink"]["connected"], 15, "agent sees it")

            # A third of the way into the outage: kill -9, and restart on the same spool.
            wait_until(lambda: time.monotonic() - stopped_at > OUTAGE_S / 3, 60, "outage")
            spooled_before_kill = agent.status()["spool"]["readings"]
            agent.kill9()
            agent.start("simulate")
            health = agent.status()
            assert health["spool"]["readings"] >= spooled_before_kill
            assert not health["uplink"]["connected"]

            wait_until(lambda: time.monotonic() - stopped_at > OUTAGE_S, 90, "the outage's end")
            backlog = agent.status()["spool"]["readings"]
            oldest = agent.status()["spool"]["oldest_unsent_age_s"]
            broker.start()

            wait_until(lambda: count_rows(plain_db) >= len(expected), 120, "every reading")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "the spool empty")
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 15, "acks")
            assert agent.stop() == 0
            assert bridge.stop() == 0
    finally:
        agent.kill()
        broker.stop()

    # The outage really was in the middle: the spool held a minute of readings.
    assert stored_at_stop < len(expected) // 2
    assert backlog >= DEVICES * RATE * 3 * (OUTAGE_S - 10), backlog
    assert oldest >= OUTAGE_S - 5, oldest
    assert_exactly_once(plain_db, expected)
    assert "Traceback" not in agent.log()
