"""Native firmware topics on the cloud broker: `bridge broker render cloud`
grants what the bridge's routes beyond telemetry/ need (bridge.broker.route_acl).
A device that logs in as itself publishes on its route's topic under its own
id and no other; a gateway route is left to the operator, with a note; the
bridge reads both."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.broker import acl, render, route_acl
from bridge.broker.route_acl import RouteSpec
from tests.broker.brokers import make_cloud
from tests.broker.clients import NOT_AUTHORIZED, SUCCESS, Client
from tests.integration.harness import wait_until

ROUTES: tuple[RouteSpec, ...] = (
    ("telemetry/{site_id}/{device_id}", "seed_json", {}),
    ("tele/{device_id}/SENSOR", "mapping", {"preset": "tasmota"}),
    ("tele/{device_id}/STATE", "mapping", {"preset": "tasmota"}),
    ("zigbee2mqtt/{device_id}", "mapping", {"preset": "zigbee2mqtt"}),
)


def test_devices_publish_on_native_topics_under_their_own_id(tmp_path: Path, pki: Path) -> None:
    cloud = make_cloud(tmp_path / "cloud", pki, routes=ROUTES)
    plug_pw = cloud.provision("plug-1")
    cloud.provision("plug-2")
    z2m_pw = cloud.provision("z2m")
    with cloud.acl.open("a") as f:  # the gateway's grant, as mosquitto/README.md shows
        f.write("\nuser z2m\ntopic write zigbee2mqtt/+\n")
    cloud.broker.start()
    watcher = Client(cloud.local_port, "bridge", cloud.passwords["bridge"])
    plug = Client(cloud.port, "plug-1", plug_pw, ca=cloud.ca)
    z2m = Client(cloud.port, "z2m", z2m_pw, ca=cloud.ca)
    try:
        assert watcher.connect() == SUCCESS
        assert watcher.subscribe("tele/#") == [1]
        assert watcher.subscribe("zigbee2mqtt/#") == [1]
        wait_until(lambda: plug.connect() == SUCCESS, 10, "plug-1 logged in")
        wait_until(lambda: z2m.connect() == SUCCESS, 10, "z2m logged in")

        assert plug.publish_acked("tele/plug-1/SENSOR", b"{}") == SUCCESS
        assert plug.publish_acked("tele/plug-1/STATE", b"{}") == SUCCESS
        assert plug.publish_acked("tele/plug-2/SENSOR", b"{}") == NOT_AUTHORIZED
        assert plug.publish_acked("tele/plug-1/RESULT", b"{}") == NOT_AUTHORIZED
        assert plug.publish_acked("zigbee2mqtt/plug-1", b"{}") == NOT_AUTHORIZED
        assert z2m.publish_acked("zigbee2mqtt/0x00158d0001", b"{}") == SUCCESS
        assert z2m.publish_acked("tele/z2m/SENSOR", b"{}") == SUCCESS  # logs in as itself too

        wait_until(lambda: len(watcher.received()) >= 4, 10, "the allowed messages")
        time.sleep(0.3)  # anything refused would have arrived by now
        assert sorted(t for t, _ in watcher.received()) == [
            "tele/plug-1/SENSOR",
            "tele/plug-1/STATE",
            "tele/z2m/SENSOR",
            "zigbee2mqtt/0x00158d0001",
        ]
    finally:
        for client in (plug, z2m, watcher):
            client.close()
        cloud.broker.stop()


def test_render_writes_the_grants_before_the_gateways_and_notes_gateway_routes(
    tmp_path: Path,
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    options = render.CloudOptions(
        etc=etc, out=tmp_path / "cloud.conf", broker_group=None, routes=ROUTES
    )
    render.render_cloud(options)
    acl.set_gateway(etc / "acl", "gw-1", "site-1")
    done = render.render_cloud(options)  # again: the managed gateway block is kept, last
    text = (etc / "acl").read_text()
    grants = (
        "pattern write tele/%u/SENSOR\npattern write tele/%u/STATE\n# The bridge reads them:\n"
        "user bridge\ntopic read tele/+/SENSOR\ntopic read tele/+/STATE\n"
        "topic read zigbee2mqtt/+\n"
    )
    assert grants in text
    assert "zigbee2mqtt/%u" not in text  # a gateway's topic: not a per-device pattern
    assert text.index(grants) < text.index("# Gateways:") < text.index("user gw-1")
    assert text.rstrip().endswith("topic write telemetry/site-1/+\ntopic read receipts/site-1")
    assert [n for n in done.notes if "zigbee2mqtt" in n] == [
        "route 'zigbee2mqtt/{device_id}': its publisher speaks for many devices; give its "
        "account `topic write zigbee2mqtt/+` in the ACL (mosquitto/README.md)"
    ]


def test_a_line_protocol_route_naming_devices_by_tag_is_a_gateway_route() -> None:
    routes: list[RouteSpec] = [
        ("influx/{device_id}", "line_protocol", {}),
        ("telegraf/{device_id}", "line_protocol", {"device_tag": "host"}),
    ]
    block, notes = route_acl.route_rules(routes, "bridge")
    assert "pattern write influx/%u\n" in block
    assert "telegraf/%u" not in block
    assert "topic read telegraf/+\n" in block
    assert notes == [
        "route 'telegraf/{device_id}': its publisher speaks for many devices; give its "
        "account `topic write telegraf/+` in the ACL (mosquitto/README.md)"
    ]
