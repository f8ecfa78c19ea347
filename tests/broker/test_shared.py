"""The bridge's shared subscription: the bridge user consumes it; a device
cannot read from it, but (Mosquitto 2.0.11) CAN join a share group whose name
it knows and make the group lose its turn of the messages. Hence a share
group name nobody can guess (mqtt.group), which these tests show is enough."""

from __future__ import annotations

import time
import uuid

from tests.broker.brokers import Cloud
from tests.broker.clients import SUCCESS, Client
from tests.integration.harness import wait_until

N = 20


def publish_readings(cloud: Cloud, device: str, password: str) -> None:
    publisher = Client(cloud.port, device, password, ca=cloud.ca)
    try:
        wait_until(lambda: publisher.connect() == SUCCESS, 10, f"{device} logged in")
        for n in range(N):
            assert publisher.publish_acked(f"telemetry/site-1/{device}", b"%d" % n) == SUCCESS
    finally:
        publisher.close()


def settle(*clients: Client, total: int) -> None:
    """Waits for ``total`` messages across ``clients``, then a little longer."""
    wait_until(lambda: sum(len(c.received()) for c in clients) >= total, 10, "deliveries")
    time.sleep(0.3)


def test_the_bridge_user_consumes_its_shared_subscription(cloud: Cloud) -> None:
    pw = cloud.provision("pump-a")
    cloud.reload()
    group = f"bridge-{uuid.uuid4().hex}"
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"], client_id="b-0")
    try:
        assert bridge.connect() == SUCCESS
        assert bridge.subscribe(f"$share/{group}/telemetry/+/+") == [1]
        publish_readings(cloud, "pump-a", pw)
        settle(bridge, total=N)
        assert len(bridge.received()) == N
    finally:
        bridge.close()


def test_a_device_in_a_share_group_it_knows_reads_nothing_but_makes_the_group_lose_its_turn(
    cloud: Cloud,
) -> None:
    pw = cloud.provision("pump-a")
    intruder_pw = cloud.provision("pump-x")
    cloud.reload()
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"], client_id="b-0")
    intruder = Client(cloud.port, "pump-x", intruder_pw, ca=cloud.ca)
    try:
        assert bridge.connect() == SUCCESS
        assert bridge.subscribe("$share/bridge/telemetry/+/+") == [1]
        wait_until(lambda: intruder.connect() == SUCCESS, 10, "pump-x logged in")
        # Mosquitto 2.0.11's ACL file does not check SUBSCRIBE: granted, QoS 1.
        assert intruder.subscribe("$share/bridge/telemetry/+/+") == [1]
        publish_readings(cloud, "pump-a", pw)
        settle(bridge, intruder, total=N // 2)
        # Read access is checked on delivery: the intruder gets nothing, but
        # the round robin still hands it every other message, which is dropped.
        assert intruder.received() == []
        assert len(bridge.received()) == N // 2
    finally:
        intruder.close()
        bridge.close()


def test_a_share_group_nobody_can_guess_loses_nothing_to_intruders(cloud: Cloud) -> None:
    pw = cloud.provision("pump-a")
    intruder_pw = cloud.provision("pump-x")
    cloud.reload()
    group = f"bridge-{uuid.uuid4().hex}"
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"], client_id="b-0")
    intruder = Client(cloud.port, "pump-x", intruder_pw, ca=cloud.ca)
    try:
        assert bridge.connect() == SUCCESS
        assert bridge.subscribe(f"$share/{group}/telemetry/+/+") == [1]
        wait_until(lambda: intruder.connect() == SUCCESS, 10, "pump-x logged in")
        for guess in ("$share/bridge/telemetry/+/+", "$share/bridge/telemetry/#", "telemetry/#"):
            assert intruder.subscribe(guess) == [1]
        publish_readings(cloud, "pump-a", pw)
        settle(bridge, total=N)
        assert len(bridge.received()) == N
        assert intruder.received() == []
    finally:
        intruder.close()
        bridge.close()
