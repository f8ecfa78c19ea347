"""An edge agent lets go of readings only for receipts of its own run naming
messages it sent: forged ones (sequences never sent, another run's epoch,
garbage) are ignored and counted, and the readings stay in the spool."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from tests.broker.clients import SUCCESS, Client
from tests.edge.harness import Agent, keys, local_broker, uplink_toml
from tests.integration.harness import wait_until


def test_receipts_for_messages_never_sent_delete_nothing(tmp_path: Path) -> None:
    broker = local_broker(tmp_path / "cloud").start()
    start = time.time() - 5
    simulator = SimulatorSettings(  # type: ignore[call-arg]
        devices=5, rate=2.0, seed=3, start=start, duration_s=5.0
    )
    fleet = Fleet(simulator, round(start * 1_000_000))
    assert fleet.last_tick is not None
    generated = len(keys([r for t in range(fleet.last_tick + 1) for r in fleet.readings(t)]))
    # A plain subscriber stands for the bridge, so that the broker delivers (PUBACK 0x00)
    # but nothing is ever committed: no receipt but the forged ones.
    watcher = Client(broker.ports[0])
    forger = Client(broker.ports[0])
    agent = Agent(
        tmp_path,
        uplink_toml(broker.ports[0], "forge/{site_id}/{device_id}", receipts="on")
        + "\n[simulator]\ndevices = 5\nrate = 2.0\nseed = 3\n"
        f"start = {start!r}\nduration_s = 5.0\n",
    )
    try:
        assert watcher.connect() == SUCCESS
        assert watcher.subscribe("forge/#") == [1]
        assert forger.connect() == SUCCESS
        agent.start("simulate")
        wait_until(
            lambda: agent.status()["receipts"]["waiting_readings"] == generated,
            30,
            "every reading acknowledged by the broker and waiting for its receipt",
        )
        receipts = agent.status()["receipts"]
        epoch, sent = receipts["epoch"], receipts["waiting_messages"]

        forged = [
            {"epoch": epoch, "seq": [[sent + 1, 10**9]]},  # never sent
            {"epoch": epoch + 1, "seq": [[1, sent]]},  # another run's
            {"epoch": epoch, "seq": [[2, 1]]},  # malformed
        ]
        for doc in forged:
            assert forger.publish_acked("receipts/site-1", orjson.dumps(doc)) == SUCCESS
        assert forger.publish_acked("receipts/site-1", b"not a receipt") == SUCCESS

        def ignored(reason: str) -> float:
            name = f'edge_receipt_sequences_ignored_total{{reason="{reason}"}}'
            return agent.metrics().get(name, 0.0)

        wait_until(lambda: ignored("malformed") == 2, 10, "the forged receipts taken in")
        assert ignored("never_sent") == 10**9 - sent
        assert ignored("other_epoch") == sent
        assert agent.status()["spool"]["readings"] == generated
        assert agent.status()["receipts"]["waiting_readings"] == generated

        # One that names what was sent, in this run, lets them go (and only once).
        for _ in range(2):
            receipt = orjson.dumps({"epoch": epoch, "seq": [[1, sent]]})
            assert forger.publish_acked("receipts/site-1", receipt) == SUCCESS
        wait_until(lambda: agent.status()["spool"]["readings"] == 0, 10, "the spool emptied")
        wait_until(lambda: ignored("not_waiting") == sent, 10, "the repeated receipt ignored")
        assert agent.metrics()["edge_committed_readings_total"] == generated
        assert agent.stop() == 0
    finally:
        agent.kill()
        watcher.close()
        forger.close()
        broker.stop()


def test_without_receipts_auto_deletes_on_puback_as_before_and_says_so(tmp_path: Path) -> None:
    broker = local_broker(tmp_path / "cloud").start()
    start = time.time() - 5
    watcher = Client(broker.ports[0])  # an old bridge: it stores, it sends no receipt
    agent = Agent(
        tmp_path,
        uplink_toml(broker.ports[0], "old/{site_id}/{device_id}")  # receipts: auto
        + "\n[simulator]\ndevices = 5\nrate = 2.0\nseed = 3\n"
        f"start = {start!r}\nduration_s = 5.0\n",
    )
    try:
        assert watcher.connect() == SUCCESS
        assert watcher.subscribe("old/#") == [1]
        agent.start("simulate")
        wait_until(lambda: agent.metrics()["edge_published_readings_total"] > 0, 30, "published")
        wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "deleted on PUBACK")
        receipts = agent.status()["receipts"]
        assert receipts["on"] is False
        assert receipts["waiting_readings"] == 0
        assert "no commit receipt from the bridge seen yet" in agent.log()
        assert agent.stop() == 0
    finally:
        agent.kill()
        watcher.close()
        broker.stop()
