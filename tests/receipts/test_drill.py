"""The drill of issue 16: nothing is lost when the cloud broker crashes.

An edge agent simulates a fleet into a real Mosquitto; the bridge (2
workers) is stopped while at least 5,000 messages queue at the broker; the
broker is killed with kill -9 (its autosave never ran: everything it queued
is gone) and restarted; the bridge is restarted. Every generated reading is
then in the database exactly once, the expected set computed from the
deterministic simulator, never from the agent's counters. The second drill
also kills the agent with kill -9 between the broker's crash and its restart.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from tests.broker.brokers import Mosquitto, free_ports
from tests.conftest import ROOT, Stack
from tests.edge.harness import Agent, keys, uplink_toml
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    wait_until,
)

DEVICES = 100
RATE = 5.0  # readings per device per second, 3 signals each: 500 messages/s live
DURATION_S = 50.0
QUEUED = 5000


def crashable_broker(root: Path) -> Mosquitto:
    """The test stack's broker settings, but a snapshot only every hour: a
    kill -9 loses everything queued since the start."""
    (port,) = free_ports(1)
    broker = Mosquitto(root, [port])
    settings = (ROOT / "mosquitto" / "local.conf").read_text()
    settings = settings.replace("autosave_interval 10", "autosave_interval 3600")
    (broker.conf_d / "local.conf").write_text(f"listener {port} 127.0.0.1\n{settings}")
    return broker


def kill9(broker: Mosquitto) -> None:
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)


@pytest.mark.parametrize("agent_killed", [False, True], ids=["broker-crash", "agent-too"])
def test_a_broker_crash_with_5000_messages_queued_loses_and_duplicates_nothing(
    stack: Stack, plain_db: str, tmp_path: Path, agent_killed: bool
) -> None:
    broker = crashable_broker(tmp_path / "cloud")
    scenario = Scenario(stack, plain_db, tmp_path, mqtt_port=broker.ports[0])
    start = time.time()
    simulator = SimulatorSettings(  # type: ignore[call-arg]
        devices=DEVICES, rate=RATE, seed=11, start=start, duration_s=DURATION_S
    )
    fleet = Fleet(simulator, round(start * 1_000_000))
    last = fleet.last_tick
    assert last is not None
    expected = keys([r for tick in range(last + 1) for r in fleet.readings(tick)])

    agent = Agent(
        tmp_path,
        uplink_toml(broker.ports[0], scenario.topic("{site_id}", "{device_id}"))
        + 'receipts = "on"\n'
        + f"\n[simulator]\ndevices = {DEVICES}\nrate = {RATE}\nseed = 11\n"
        f"start = {start!r}\nduration_s = {DURATION_S}\n",
    )
    broker.start()
    bridge = BridgeProcess(scenario, workers=2)
    try:
        with running(bridge):
            bridge.wait_ready()
            agent.start("simulate")
            wait_until(lambda: agent.metrics()["edge_receipts_total"] > 0, 30, "a first receipt")
            wait_until(lambda: count_rows(plain_db) >= 1000, 30, "readings flowing")
            assert bridge.stop() == 0  # keeps its session: the broker queues for it

        published = agent.metrics()["edge_published_messages_total"]
        wait_until(
            lambda: agent.metrics()["edge_published_messages_total"] - published >= QUEUED,
            60,
            f"{QUEUED} messages queued at the broker for the stopped bridge",
        )
        health = agent.status()
        assert health["receipts"]["waiting_messages"] >= QUEUED
        queued = agent.metrics()["edge_published_messages_total"] - published
        stored_before_crash = count_rows(plain_db)

        kill9(broker)
        if agent_killed:
            agent.kill9()
        broker.start()
        if agent_killed:
            agent.start("simulate")
        with running(BridgeProcess(scenario, workers=2)) as restarted:
            restarted.wait_ready()
            # Receipted means committed: once the simulation is over and the spool
            # is empty, every reading must be in the database already.
            wait_until(lambda: time.time() > start + DURATION_S + 2, 120, "the simulation's end")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 180, "the spool empty")
            receipted = sum(restarted.metrics(w)["bridge_receipted_messages_total"] for w in (0, 1))
            assert all(restarted.metrics(w)["bridge_receipted_messages_total"] > 0 for w in (0, 1))
            assert agent.stop() == 0
            assert restarted.stop() == 0
    finally:
        agent.kill()
        broker.stop()

    assert stored_before_crash < len(expected) // 2, "the crash was not in the middle"
    assert queued >= QUEUED
    assert receipted > 0
    assert_exactly_once(plain_db, expected)
    assert "Traceback" not in agent.log()
    print(
        f"drill ({'agent killed too' if agent_killed else 'broker crash'}): "
        f"{len(expected)} readings expected and stored once; {queued:.0f} messages queued "
        f"at the crash; {stored_before_crash} stored before it; {receipted:.0f} messages "
        "receipted after the restart"
    )
