"""What each user may publish and read: a device only under its own id, a
gateway only for its own site, and only the bridge reads telemetry. What the
ACL refuses never reaches a subscriber, nor (through the real bridge) the
database."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.cli import main
from tests.broker.brokers import Cloud
from tests.broker.clients import NOT_AUTHORIZED, SUCCESS, Client
from tests.broker.ingest import BrokerScenario
from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    count_rows,
    running,
    seed_message,
    stored_points,
    wait_until,
)


def reading(device: str, n: int) -> bytes:
    return seed_message(device, time.time_ns() // 1000 - 60_000_000 + n, {"flow_rate": float(n)})


def test_a_device_publishes_only_under_its_own_id_and_reads_no_telemetry(cloud: Cloud) -> None:
    a_pw = cloud.provision("pump-a")
    cloud.provision("pump-b")
    cloud.reload()
    watcher = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    device = Client(cloud.port, "pump-a", a_pw, ca=cloud.ca)
    try:
        assert watcher.connect() == SUCCESS
        for bridge_filter in ("telemetry/#", "points/#", "sensors/#"):
            assert watcher.subscribe(bridge_filter) == [1]
        wait_until(lambda: device.connect() == SUCCESS, 10, "pump-a logged in")
        # Subscribing is allowed (Mosquitto 2.0.11's ACL file never checks it),
        # but nothing of another device's telemetry is delivered.
        assert device.subscribe("telemetry/#") == [1]

        assert device.publish_acked("telemetry/site-1/pump-b", b"spoofed") == NOT_AUTHORIZED
        assert device.publish_acked("telemetry/pump-b", b"spoofed") == NOT_AUTHORIZED
        assert device.publish_acked("telemetry/site-1/pump-b/x", b"spoofed") == NOT_AUTHORIZED
        assert device.publish_acked("points/pump-b", b"spoofed") == NOT_AUTHORIZED
        assert device.publish_acked("sensors/pump-b/flow", b"1.5") == NOT_AUTHORIZED
        assert device.publish_acked("commands/pump-b/stop", b"1") == NOT_AUTHORIZED
        assert device.publish_acked("$SYS/broker/x", b"1") == NOT_AUTHORIZED
        own = (
            "telemetry/site-1/pump-a",
            "telemetry/pump-a",
            "points/pump-a",
            "sensors/pump-a/flow",
        )
        for topic in own:
            assert device.publish_acked(topic, b"own") == SUCCESS, topic

        wait_until(lambda: len(watcher.received()) >= 4, 10, "the device's own messages")
        time.sleep(0.3)  # anything else published before them would have arrived by now
        assert sorted(t for t, _ in watcher.received()) == [
            "points/pump-a",
            "sensors/pump-a/flow",
            "telemetry/pump-a",
            "telemetry/site-1/pump-a",
        ]
        assert device.received() == []  # not even its own: it may read only commands/pump-a/#
    finally:
        device.close()
        watcher.close()


def test_a_device_reads_its_own_commands_only(cloud: Cloud) -> None:
    a_pw = cloud.provision("pump-a")
    ops_pw = cloud.provision("ops")
    # An operator's user, added by hand as README.md shows.
    with cloud.acl.open("a") as f:
        f.write("\nuser ops\ntopic write commands/#\n")
    cloud.reload()
    device = Client(cloud.port, "pump-a", a_pw, ca=cloud.ca)
    ops = Client(cloud.local_port, "ops", ops_pw)
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    try:
        wait_until(lambda: device.connect() == SUCCESS, 10, "pump-a logged in")
        assert ops.connect() == SUCCESS
        assert bridge.connect() == SUCCESS
        assert device.subscribe("commands/#") == [1]
        assert ops.publish_acked("commands/pump-b/stop", b"b") == SUCCESS  # matched, not delivered
        assert ops.publish_acked("commands/pump-a/stop", b"a") == SUCCESS
        assert bridge.publish_acked("commands/pump-a/stop", b"x") == NOT_AUTHORIZED
        wait_until(lambda: len(device.received()) >= 1, 10, "pump-a's command")
        time.sleep(0.3)
        assert device.received() == [("commands/pump-a/stop", b"a")]
    finally:
        device.close()
        ops.close()
        bridge.close()


def test_a_gateway_publishes_for_its_own_site_only(cloud: Cloud) -> None:
    gw_pw = cloud.provision("gw-1", site="site-1")
    cloud.reload()
    watcher = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    gateway = Client(cloud.port, "gw-1", gw_pw, ca=cloud.ca)
    try:
        assert watcher.connect() == SUCCESS
        assert watcher.subscribe("telemetry/#") == [1]
        wait_until(lambda: gateway.connect() == SUCCESS, 10, "gw-1 logged in")
        assert gateway.publish_acked("telemetry/site-1/pump-1", b"x") == SUCCESS
        assert gateway.publish_acked("telemetry/site-1/pump-2", b"x") == SUCCESS
        assert gateway.publish_acked("telemetry/site-2/pump-9", b"x") == NOT_AUTHORIZED
        assert gateway.publish_acked("telemetry/site-1/pump-1/deep", b"x") == NOT_AUTHORIZED
        wait_until(lambda: len(watcher.received()) >= 2, 10, "the gateway's messages")
    finally:
        gateway.close()
        watcher.close()
    # Revoking removes its ACL entry as well as its password.
    assert (
        main(["broker", "revoke", "gw-1", "--passwd", str(cloud.passwd), "--acl", str(cloud.acl)])
        == 0
    )
    assert "gw-1" not in cloud.acl.read_text()


def test_spoofed_telemetry_never_reaches_the_database(
    cloud: Cloud, stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    a_pw = cloud.provision("pump-a")
    cloud.provision("pump-b")
    cloud.reload()
    scenario = BrokerScenario(
        stack, plain_db, tmp_path, mqtt_port=cloud.local_port, password=cloud.passwords["bridge"]
    )
    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        device = Client(cloud.port, "pump-a", a_pw, ca=cloud.ca)
        try:
            wait_until(lambda: device.connect() == SUCCESS, 10, "pump-a logged in")
            # As pump-b, in topic and payload alike: refused by the broker.
            spoofed = [
                device.publish_acked("telemetry/site-1/pump-b", reading("pump-b", n))
                for n in range(5)
            ]
            own = [
                device.publish_acked("telemetry/site-1/pump-a", reading("pump-a", n))
                for n in range(5)
            ]
        finally:
            device.close()
        assert spoofed == [NOT_AUTHORIZED] * 5
        assert own == [SUCCESS] * 5  # the bridge has subscribed: it is ready
        wait_until(lambda: count_rows(plain_db) >= 5, 30, "pump-a's points")
        wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
        assert bridge.stop() == 0
    assert sorted(d for d, _, _ in stored_points(plain_db)) == ["pump-a"] * 5
    assert count_rows(plain_db, "SELECT count(*) FROM rejected_messages") == 0


def test_alarm_transitions_reach_their_device_and_the_alerts_user_only(cloud: Cloud) -> None:
    a_pw = cloud.provision("pump-a")
    alerts_pw = cloud.provision("alerts")
    cloud.reload()
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    device = Client(cloud.port, "pump-a", a_pw, ca=cloud.ca)
    console = Client(cloud.port, "alerts", alerts_pw, ca=cloud.ca)
    try:
        assert bridge.connect() == SUCCESS
        wait_until(lambda: device.connect() == SUCCESS, 10, "pump-a logged in")
        assert console.connect() == SUCCESS
        assert device.subscribe("alerts/#") == [1]
        assert console.subscribe("alerts/#") == [1]
        assert device.publish_acked("alerts/site-1/pump-a", b"forged") == NOT_AUTHORIZED
        assert console.publish_acked("alerts/site-1/pump-a", b"forged") == NOT_AUTHORIZED
        for topic in ("alerts/site-1/pump-a", "alerts/site-1/pump-b", "alerts/_/pump-c"):
            assert bridge.publish_acked(topic, b"{}") == SUCCESS, topic
        wait_until(lambda: len(console.received()) >= 3, 10, "every transition at the console")
        wait_until(lambda: len(device.received()) >= 1, 10, "the device's own")
        time.sleep(0.3)  # anything else for the device would have arrived by now
        assert sorted(t for t, _ in console.received()) == [
            "alerts/_/pump-c",
            "alerts/site-1/pump-a",
            "alerts/site-1/pump-b",
        ]
        assert [t for t, _ in device.received()] == ["alerts/site-1/pump-a"]
    finally:
        for client in (device, console, bridge):
            client.close()
