"""Receipt topics: only the bridge writes receipts/<site>, and only that
site's gateway reads it; a device or another gateway can neither forge nor
read them (the ACL rendered by `bridge broker`, on a real broker)."""

from __future__ import annotations

import time

from tests.broker.brokers import Cloud
from tests.broker.clients import NOT_AUTHORIZED, SUCCESS, Client
from tests.integration.harness import wait_until


def test_only_the_bridge_writes_a_gateways_receipts_and_only_it_reads_them(cloud: Cloud) -> None:
    gw1_pw = cloud.provision("gw-1", site="site-1")
    gw2_pw = cloud.provision("gw-2", site="site-2")
    device_pw = cloud.provision("pump-a")
    cloud.reload()
    bridge = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    gw1 = Client(cloud.port, "gw-1", gw1_pw, ca=cloud.ca)
    gw2 = Client(cloud.port, "gw-2", gw2_pw, ca=cloud.ca)
    device = Client(cloud.port, "pump-a", device_pw, ca=cloud.ca)
    clients = (bridge, gw1, gw2, device)
    try:
        assert bridge.connect() == SUCCESS
        for client in (gw1, gw2, device):
            wait_until(lambda c=client: c.connect() == SUCCESS, 10, "logged in")
            # Mosquitto 2.0.11's ACL file does not check SUBSCRIBE; delivery it does.
            assert client.subscribe("receipts/#") == [1]

        forged = b'{"epoch": 1, "seq": [[1, 1000000]]}'
        assert device.publish_acked("receipts/site-1", forged) == NOT_AUTHORIZED
        assert gw2.publish_acked("receipts/site-1", forged) == NOT_AUTHORIZED
        assert gw1.publish_acked("receipts/site-1", forged) == NOT_AUTHORIZED
        assert gw1.publish_acked("receipts/site-2", forged) == NOT_AUTHORIZED

        real = b'{"epoch": 7, "seq": [[1, 3]]}'
        assert bridge.publish_acked("receipts/site-1", real) == SUCCESS
        assert bridge.publish_acked("receipts/site-2", b'{"epoch": 8, "seq": [[5, 5]]}') == SUCCESS
        wait_until(lambda: len(gw1.received()) >= 1 and len(gw2.received()) >= 1, 10, "receipts")
        time.sleep(0.3)  # a forged or foreign receipt sent before would have arrived by now
        assert gw1.received() == [("receipts/site-1", real)]
        assert gw2.received() == [("receipts/site-2", b'{"epoch": 8, "seq": [[5, 5]]}')]
        assert device.received() == []
    finally:
        for client in clients:
            client.close()
