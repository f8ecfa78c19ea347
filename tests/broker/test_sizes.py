"""The cloud broker's size bounds: a packet over 1 MiB costs its sender the
connection and reaches nobody; a payload under it, even one over the
bridge's own limit, reaches the bridge (which dead-letters it with a reason)."""

from __future__ import annotations

from tests.broker.brokers import Cloud
from tests.broker.clients import SUCCESS, Client
from tests.integration.harness import wait_until

MIB = 1 << 20


def test_a_packet_over_1_mib_disconnects_its_sender_and_reaches_nobody(cloud: Cloud) -> None:
    password = cloud.provision("pump-a")
    cloud.reload()
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    device = Client(cloud.port, "pump-a", password, ca=cloud.ca)
    try:
        assert bridge.connect() == SUCCESS
        assert bridge.subscribe("telemetry/#") == [1]
        wait_until(lambda: device.connect() == SUCCESS, 10, "pump-a logged in")
        topic = "telemetry/site-1/pump-a"
        assert device.publish_acked(topic, b"x" * (300 * 1024)) == SUCCESS  # over 256 KiB
        # The broker may cut the connection while the client is still writing,
        # so paho's return code varies; the broker's log line below is the proof.
        device.client.publish(topic, b"y" * (MIB + 1), qos=1)
        wait_until(device.disconnected.is_set, 10, "the broker dropping pump-a")
        dropped = "Client pump-a disconnected due to oversize packet"
        wait_until(lambda: cloud.broker.lines(dropped) == 1, 10, "the broker saying why")
        # The broker has refused the oversized packet (its log says so above),
        # so it can no longer arrive: what came is all that will.
        wait_until(lambda: len(bridge.received()) >= 1, 10, "the 300 KiB payload")
        assert [(t, len(p)) for t, p in bridge.received()] == [(topic, 300 * 1024)]
    finally:
        device.close()
        bridge.close()
