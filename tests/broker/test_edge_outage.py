"""A gateway whose uplink drops loses nothing its local devices sent.

Devices publish to the edge broker, which forwards telemetry/<site>/+ to the
cloud broker (MQTT v5, QoS 1, TLS, persistent session); the real bridge
consumes the cloud broker's shared subscription and writes the database.

Mosquitto 2.0.11 does not restore shared subscriptions after a restart, and
the edge's Mosquitto bridge treats a PUBACK of 0x10 (no matching
subscribers) as delivered. So whatever the edge forwards after the cloud
broker restarts and before the bridge has subscribed again is lost: the
second test shows it, counted. The login gate of the cloud's device listener
(closed before the broker starts, opened once the bridge is ready) keeps the
edge out of that window: the first test shows nothing is lost through a 30 s
outage in the middle of 10,000 points.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.cli import main
from tests.broker.brokers import Cloud, Edge, make_cloud, make_edge, wait_for_log
from tests.broker.clients import SUCCESS, Client
from tests.broker.ingest import BrokerScenario
from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Key,
    assert_exactly_once,
    count_rows,
    running,
    seed_message,
    stored_points,
    wait_until,
)

SITE = "site-1"
GATEWAY = "gw-site-1"
FORWARDED = f"Sending PUBLISH to local.{GATEWAY} "  # the edge forwarding one message
DROPPED = f"Received PUBACK from local.{GATEWAY} (Mid: "  # ...answered; RC:16 = dropped
LOGIN = f" as {GATEWAY} ("  # the cloud accepting the gateway


@dataclass
class Site:
    cloud: Cloud
    edge: Edge
    scenario: BrokerScenario

    def bridge(self) -> BridgeProcess:
        return BridgeProcess(self.scenario)

    def gateway_logins(self) -> int:
        return self.cloud.broker.lines(LOGIN)

    def no_subscriber_pubacks(self) -> int:
        """PUBACKs with reason 0x10 the edge got from the cloud: messages dropped."""
        return sum(
            line.endswith("RC:16)")
            for line in self.edge.broker.log().splitlines()
            if DROPPED in line
        )


@pytest.fixture
def site(tmp_path: Path, pki: Path, stack: Stack, plain_db: str) -> Iterator[Site]:
    cloud = make_cloud(tmp_path / "cloud", pki)
    edge = make_edge(tmp_path / "edge", cloud, SITE, GATEWAY, debug=True)
    scenario = BrokerScenario(
        stack, plain_db, tmp_path, mqtt_port=cloud.local_port, password=cloud.passwords["bridge"]
    )
    try:
        cloud.broker.start()
        edge.broker.start()
        wait_for_log(cloud.broker, LOGIN)
        yield Site(cloud, edge, scenario)
    finally:
        edge.broker.stop()
        cloud.broker.stop()


class Fleet:
    """Devices publishing single-reading messages to the edge broker, paced."""

    def __init__(self, edge: Edge, devices: int, start_us: int) -> None:
        self.clients: dict[str, Client] = {}
        self.start_us = start_us
        self.sent = 0
        self.expected: set[Key] = set()
        for d in range(devices):
            name = f"pump-{d:02d}"
            client = Client(edge.port, name, edge.provision(name))
            self.clients[name] = client
        edge.reload()
        for name, client in self.clients.items():
            wait_until(lambda c=client: c.connect() == SUCCESS, 10, f"{name} on the edge")  # type: ignore[misc]

    def publish(self, count: int, rate: float) -> None:
        """Publishes ``count`` messages round-robin over the devices at ``rate``/s."""
        names = list(self.clients)
        started = time.monotonic()
        for i in range(count):
            name = names[i % len(names)]
            t = self.start_us + self.sent * 1000
            self.clients[name].publish(
                f"telemetry/{SITE}/{name}", seed_message(name, t, {"flow_rate": float(i)})
            )
            self.expected.add((name, "flow_rate", t))
            self.sent += 1
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def in_background(self, count: int, rate: float) -> threading.Thread:
        thread = threading.Thread(target=self.publish, args=(count, rate), daemon=True)
        thread.start()
        return thread

    def all_acked(self) -> bool:
        """Every message has the edge's PUBACK, and all of them were SUCCESS."""
        acks = [r for c in self.clients.values() for r in c.pubacks.values()]
        assert set(acks) <= {SUCCESS}, set(acks)
        return len(acks) == self.sent

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def test_an_edge_keeps_10000_points_through_a_30s_cloud_outage_and_all_arrive_once(
    site: Site,
) -> None:
    cloud = site.cloud
    fleet = Fleet(site.edge, devices=10, start_us=time.time_ns() // 1000 - 3_600_000_000)
    with running(site.bridge()) as bridge:
        bridge.wait_ready()
        try:
            load = fleet.in_background(10_000, rate=250)  # 40 s of traffic
            wait_until(lambda: count_rows(site.scenario.db_url) >= 1000, 30, "ingest under way")

            # The cloud broker goes down (closing its gate first, as its
            # service does before every start) for 30 s of the traffic.
            cloud.close_gate()
            cloud.broker.stop()
            sent_at_stop = fleet.sent
            stored_at_stop = count_rows(site.scenario.db_url)
            wait_until(lambda: not bridge.ready(), 10, "the bridge to notice")
            time.sleep(30)  # the outage itself, by design
            sent_in_outage = fleet.sent - sent_at_stop
            cloud.broker.start()
            # The edge retries (every 2-10 s) and is refused while the gate is shut.
            wait_for_log(site.edge.broker, "Connection Refused", timeout=20)

            # The gate opens once the bridge has subscribed again.
            gate_open = [
                "broker", "gate", "open", "--gate", str(cloud.gate), "--passwd",
                str(cloud.passwd), "--when-ready", bridge.url("/readyz"), "--timeout", "30",
                "--reload", str(cloud.broker.pid_file),
            ]  # fmt: skip
            assert main(gate_open) == 0
            load.join(60)
            assert not load.is_alive()
            wait_until(fleet.all_acked, 30, "the edge's PUBACKs")
            wait_until(
                lambda: count_rows(site.scenario.db_url) >= len(fleet.expected),
                90,
                "every point in the database",
            )
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
            assert bridge.stop() == 0
        finally:
            fleet.close()

    # The outage really was in the middle of the traffic...
    assert 1000 <= sent_at_stop < 10_000
    assert stored_at_stop < 10_000
    assert sent_in_outage >= 5000, sent_in_outage
    # ...the edge was kept out until the gate opened, then got in again...
    assert site.gateway_logins() == 2
    # ...and nothing it forwarded met a cloud without the bridge's subscription.
    assert site.no_subscriber_pubacks() == 0
    assert len(fleet.expected) == 10_000
    assert_exactly_once(site.scenario.db_url, fleet.expected)


def test_without_the_gate_what_the_edge_forwards_before_the_bridge_subscribes_is_lost(
    site: Site,
) -> None:
    """The residual risk the gate exists for, counted: the cloud broker restarts,
    its gate stays open, and the edge gets in before the bridge has subscribed."""
    cloud = site.cloud
    fleet = Fleet(site.edge, devices=2, start_us=time.time_ns() // 1000 - 3_600_000_000)
    try:
        with running(site.bridge()) as bridge:
            bridge.wait_ready()
            fleet.publish(100, rate=1000)
            wait_until(lambda: count_rows(site.scenario.db_url) >= 100, 30, "the first 100")
            assert bridge.stop() == 0  # its session stays; only a restart loses its subscription
        before = set(stored_points(site.scenario.db_url))

        cloud.broker.stop()
        cloud.broker.start()  # gate open: nothing keeps the edge out
        wait_for_log(cloud.broker, LOGIN, count=2)  # the edge is back in
        forwarded = site.edge.broker.lines(FORWARDED)
        fleet.publish(200, rate=1000)
        wait_until(lambda: site.edge.broker.lines(FORWARDED) >= forwarded + 200, 30, "forwarded")
        wait_until(lambda: site.no_subscriber_pubacks() >= 200, 30, "the cloud's PUBACKs")

        with running(site.bridge()) as bridge:
            bridge.wait_ready()
            fleet.publish(100, rate=1000)
            wait_until(lambda: count_rows(site.scenario.db_url) >= 200, 30, "the last 100")
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
            time.sleep(1)  # had any of the 200 been kept, it would have arrived by now
            assert bridge.stop() == 0
    finally:
        fleet.close()
    stored = set(stored_points(site.scenario.db_url))
    lost = fleet.expected - stored
    assert len(before) == 100
    assert site.no_subscriber_pubacks() == 200  # every one answered 0x10 and dropped
    assert len(lost) == 200
    assert len(stored) == 200


def test_what_the_edge_holds_survives_a_restart_of_the_edge_broker(site: Site) -> None:
    cloud = site.cloud
    fleet = Fleet(site.edge, devices=2, start_us=time.time_ns() // 1000 - 3_600_000_000)
    try:
        with running(site.bridge()) as bridge:
            bridge.wait_ready()
            cloud.close_gate()
            cloud.broker.stop()
            fleet.publish(500, rate=2000)
            wait_until(fleet.all_acked, 10, "the edge's PUBACKs")
            fleet.close()
            site.edge.broker.stop()  # a clean stop: the queue is saved
            site.edge.broker.start()
            cloud.broker.start()
            wait_until(bridge.ready, 30, "the bridge subscribed again")
            cloud.open_gate()
            cloud.reload()
            wait_until(lambda: count_rows(site.scenario.db_url) >= 500, 30, "the held messages")
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
            assert bridge.stop() == 0
    finally:
        fleet.close()
    assert site.no_subscriber_pubacks() == 0
    assert_exactly_once(site.scenario.db_url, fleet.expected)
