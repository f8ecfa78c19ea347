"""One connection (MqttSource) with a real paho client: the splitter, not
paho, delivers PUBLISHes; CONNECT states our limits; a closed source is
closed for good; and a paho that changed under us is refused at startup."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.cli import main
from bridge.config import MqttSettings
from bridge.source.internals import MqttInternalsChanged, check_internals
from bridge.source.mqtt import MqttSource
from tests.source.scripted import CONNECT, ScriptedBroker, connack, publish


async def test_a_publish_through_a_real_paho_client_is_delivered_by_the_splitter() -> None:
    check_internals()  # drives paho over a socket pair; raises if paho delivered it


async def test_a_paho_that_no_longer_calls_create_socket_is_refused_naming_the_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def reconnect(self: paho.Client) -> paho.MQTTErrorCode:
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS  # as if paho made its socket elsewhere

    monkeypatch.setattr(paho.Client, "reconnect", reconnect)
    with pytest.raises(MqttInternalsChanged, match=r"_create_socket.*Installed: paho-mqtt 2\.2\.0"):
        check_internals()


def connect_properties(body: bytes) -> Properties:
    at = 2 + int.from_bytes(body[:2], "big") + 4  # protocol name, level, flags, keepalive
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.unpack(body[at:])  # type: ignore[no-untyped-call]
    return props


async def test_connect_carries_receive_maximum_and_maximum_packet_size() -> None:
    async with ScriptedBroker() as broker:
        settings = MqttSettings(port=broker.port, receive_maximum=123, max_packet_bytes=2_000_000)
        source = MqttSource(settings, "c1", lambda *m: None)
        connecting = asyncio.create_task(source.connect())
        peer = await broker.next_peer()
        props = connect_properties(await peer.expect(CONNECT))
        peer.send(connack())
        await connecting
        await source.close()
    assert props.ReceiveMaximum == 123
    assert props.MaximumPacketSize == 2_000_000


async def test_a_closed_source_delivers_nothing_and_releases_its_socket() -> None:
    got: list[int] = []
    async with ScriptedBroker() as broker:
        source = MqttSource(MqttSettings(port=broker.port), "c1", lambda *m: got.append(m[2]))
        connecting = asyncio.create_task(source.connect())
        peer = await broker.next_peer()
        await peer.expect(CONNECT)
        peer.send(connack() + publish("t", b"p", mid=1))
        await connecting
        await asyncio.sleep(0.1)
        assert got == [1]
        await source.close()
        await asyncio.wait_for(peer.closed.wait(), 5)
        peer.send(publish("t", b"p", mid=2))
        await asyncio.sleep(0.1)
        source.ack([1])  # nothing is sent on a closed source
    assert got == [1]
    assert peer.acked() == []


def test_bridge_run_refuses_to_start_on_a_changed_paho_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def reconnect(self: paho.Client) -> paho.MQTTErrorCode:
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    monkeypatch.setattr(paho.Client, "reconnect", reconnect)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    assert main(["run"]) == 1
    error = capsys.readouterr().err
    assert "bridge: error: the MQTT libraries do not behave" in error
    assert "paho-mqtt 2.2.0" in error
    assert "Traceback" not in error
