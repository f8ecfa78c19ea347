"""Broker-side loss made visible: worker 0 exports the broker's $SYS
counters, and a message the broker drops (a session's queue was full) shows
up as mosquitto_dropped_messages on its /metrics."""

from __future__ import annotations

from pathlib import Path

from tests.broker.brokers import Mosquitto, free_ports
from tests.broker.clients import SUCCESS, Client
from tests.conftest import ROOT, Stack
from tests.integration.harness import BridgeProcess, Scenario, running, wait_until

QUEUE = 50


def small_queue_broker(root: Path) -> Mosquitto:
    (port,) = free_ports(1)
    broker = Mosquitto(root, [port])
    settings = (ROOT / "mosquitto" / "local.conf").read_text()
    settings = settings.replace("max_queued_messages 1000000", f"max_queued_messages {QUEUE}")
    (broker.conf_d / "local.conf").write_text(
        f"listener {port} 127.0.0.1\nsys_interval 1\n{settings}"
    )
    return broker


def test_messages_the_broker_drops_reach_prometheus(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    broker = small_queue_broker(tmp_path / "cloud").start()
    scenario = Scenario(stack, plain_db, tmp_path, mqtt_port=broker.ports[0])
    # A session that subscribed, then went away: the broker queues for it, up to QUEUE.
    away = Client(broker.ports[0], client_id="away", session_expiry=3600)
    publisher = Client(broker.ports[0])
    try:
        assert away.connect() == SUCCESS
        assert away.subscribe("away/#") == [1]
        away.close()
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            wait_until(
                lambda: bridge.metrics().get("mosquitto_clients_connected", 0) >= 1,
                30,
                "$SYS values exported",
            )
            assert bridge.metrics()["mosquitto_dropped_messages"] == 0  # none dropped yet
            assert publisher.connect() == SUCCESS
            for n in range(QUEUE + 20):
                assert publisher.publish_acked("away/x", str(n).encode()) == SUCCESS
            wait_until(
                lambda: bridge.metrics().get("mosquitto_dropped_messages", 0) == 20,
                30,
                "the 20 dropped messages on /metrics",
            )
            metrics = bridge.metrics()
            assert metrics["mosquitto_store_messages"] >= QUEUE
            assert 0 <= metrics["mosquitto_sys_age_seconds"] < 30
            assert bridge.stop() == 0
    finally:
        publisher.close()
        broker.stop()
