"""The spool's bound and the broker's "not delivered" answers, end to end.

- Spool full: with a tiny spool and the uplink down, the OLDEST readings are
  dropped, counted, logged and reported in /healthz and /metrics; once the
  uplink is back the database holds exactly the newest ones.
- PUBACK 0x10 (no matching subscribers): what the broker accepted for nobody
  stays in the spool and is sent again until the bridge has subscribed.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.types import Point
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


def past_fleet(devices: int, rate: float, seconds: float) -> tuple[str, list[Point]]:
    """A simulator section whose readings all lie in the past (generated at
    once, as a catch-up), and those readings in the order they are spooled."""
    start = time.time() - seconds - 60
    settings = SimulatorSettings(  # type: ignore[call-arg]
        devices=devices, rate=rate, seed=3, start=start, duration_s=seconds
    )
    fleet = Fleet(settings, round(start * 1_000_000))
    last = fleet.last_tick
    assert last is not None
    readings = [r for tick in range(last + 1) for r in fleet.readings(tick)]
    toml = (
        f"\n[simulator]\ndevices = {devices}\nrate = {rate}\nseed = 3\nstart = {start!r}\n"
        f"duration_s = {seconds}\n"
    )
    return toml, readings


def test_a_full_spool_drops_the_oldest_counts_them_and_says_so(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    broker = local_broker(tmp_path / "cloud")  # not started yet: the uplink is down
    scenario = Scenario(stack, plain_db, tmp_path, mqtt_port=broker.ports[0])
    simulator, generated = past_fleet(devices=10, rate=10, seconds=20)
    capacity = 1000
    agent = Agent(
        tmp_path,
        uplink_toml(broker.ports[0], scenario.topic("{site_id}", "{device_id}")) + simulator,
        max_readings=capacity,
    )
    dropped = len(generated) - capacity
    assert dropped > 4000
    try:
        agent.start("simulate")
        wait_until(
            lambda: agent.status()["spool"]["dropped_total"] == dropped,
            30,
            "every reading generated",
        )
        health = agent.status()
        metrics = agent.metrics()
        assert health["spool"]["readings"] == capacity
        assert health["status"] == "degraded"
        assert f"{dropped} oldest readings dropped" in " ".join(health["problems"])
        assert metrics["edge_spool_dropped_readings_total"] == dropped
        assert metrics["edge_spool_readings"] == capacity
        assert "spool full (1000 readings): dropped the" in agent.log()

        broker.start()
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            wait_until(lambda: count_rows(plain_db) >= capacity, 60, "the spool drained")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
        broker.stop()
    # Exactly the newest `capacity` readings, in the order they were generated.
    assert_exactly_once(plain_db, keys(generated[dropped:]))


def test_a_puback_of_no_matching_subscribers_keeps_the_reading_until_the_bridge_subscribes(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    simulator, generated = past_fleet(devices=5, rate=2, seconds=10)
    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}")) + simulator,
    )
    not_delivered = 'edge_publish_not_delivered_total{reason="No matching subscribers"}'
    try:
        agent.start("simulate")
        # Nobody subscribes to this test's topics yet: every PUBACK says 0x10.
        wait_until(lambda: agent.metrics().get(not_delivered, 0) >= 10, 30, "0x10 answers")
        assert agent.status()["spool"]["readings"] == len(generated)
        assert count_rows(plain_db) == 0
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            wait_until(lambda: count_rows(plain_db) >= len(generated), 60, "every reading")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
    assert_exactly_once(plain_db, keys(generated))
    assert "did not deliver" in agent.log()
