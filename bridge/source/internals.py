"""What the source relies on inside paho-mqtt and aiomqtt, and a startup check.

Neither library offers manual acks with our own PUBLISH parser, so
bridge/source/mqtt.py reaches into them. It relies on:
  * paho ``Client._create_socket``: called by ``reconnect`` for the socket
    that paho then reads; we hand paho a PublishSplitter around it;
  * paho ``Client._packet_queue``: queues bytes behind paho's own packets,
    so a partly written packet is never interleaved (our PUBACKs);
  * paho ``Client._sock``, ``_sock_close``, ``loop_read``: the socket, closing
    it for good, reading it (when reads resume after a pause);
  * paho ``Client._last_bytes_received``, ``_ping_t`` and ``time_func``: the
    keepalive clock that PUBLISH bytes, which paho never sees, refresh;
  * aiomqtt ``Client._client`` (the paho client), ``_connected`` and
    ``_disconnected`` (futures of the connection's state).

If a release moves any of these, the failure must be loud: with
``_create_socket`` kept but no longer called, paho would parse PUBLISHes into
aiomqtt's queue, which nobody reads; nothing would be ingested or acked and
/readyz would still say connected. So ``check_internals`` drives a real paho
client through CONNECT, CONNACK, one PUBLISH and a PUBACK over a local socket
pair and raises ``MqttInternalsChanged``, naming the versions, unless the
splitter (not paho) delivered the PUBLISH. pyproject pins the versions below.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bridge.errors import BridgeError
from bridge.source.wire import PublishSplitter

VERIFIED = {"paho-mqtt": "2.2.0", "aiomqtt": "2.5.1"}

_CONNACK = b"\x20\x03\x00\x00\x00"  # no session, success, no properties
_PUBLISH = b"\x32\x07\x00\x01t\x00\x01\x00p"  # QoS 1, topic "t", id 1, payload "p"
_PUBACK = b"\x40\x02\x00\x01"


class MqttInternalsChanged(BridgeError):
    """paho-mqtt or aiomqtt no longer behaves as bridge/source/mqtt.py needs."""


def installed() -> str:
    return ", ".join(f"{name} {version(name)}" for name in VERIFIED)


def install_splitter(client: paho.Client, make: Callable[[Any], PublishSplitter]) -> None:
    """Makes paho read each new connection's socket through ``make(socket)``."""
    create_socket = client._create_socket

    def splitter() -> PublishSplitter:
        return make(create_socket())

    client._create_socket = splitter  # type: ignore[method-assign]


def check_internals() -> None:
    """Raises MqttInternalsChanged unless paho and aiomqtt behave as relied on.
    Call it on the event loop (aiomqtt's client needs one); no network."""
    try:
        _check_aiomqtt()
        _check_paho()
    except MqttInternalsChanged:
        raise
    except Exception as exc:
        raise _changed(f"{type(exc).__name__}: {exc}") from exc


def check_internals_at_startup() -> None:
    """``check_internals`` for a caller with no event loop running (the CLI)."""

    async def check() -> None:
        check_internals()

    asyncio.run(check())


def _changed(what: str) -> MqttInternalsChanged:
    verified = ", ".join(f"{name} {v}" for name, v in VERIFIED.items())
    return MqttInternalsChanged(
        f"the MQTT libraries do not behave as the bridge needs ({what}). Installed: "
        f"{installed()}; verified: {verified}. Install the verified versions "
        "(pip install -e .) or check bridge/source/internals.py against the new ones."
    )


def _check_aiomqtt() -> None:
    client = aiomqtt.Client("127.0.0.1")
    if not isinstance(client._client, paho.Client):
        raise _changed("aiomqtt.Client._client is not a paho client")
    for name in ("_connected", "_disconnected"):
        if not isinstance(getattr(client, name, None), asyncio.Future):
            raise _changed(f"aiomqtt.Client.{name} is not a future")


def _check_paho() -> None:
    if not callable(getattr(paho, "time_func", None)):
        raise _changed("paho.mqtt.client.time_func is gone")
    ours, broker = socket.socketpair()
    try:
        _drive(ours, broker)
    finally:
        ours.close()
        broker.close()


def _drive(ours: socket.socket, broker: socket.socket) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.manual_ack_set(True)
    got: list[tuple[str, bytes, int, int]] = []
    paho_got: list[object] = []
    traffic: list[bool] = []
    client.on_message = lambda *args: paho_got.append(args)
    client._create_socket = lambda: ours  # type: ignore[method-assign]
    made: list[PublishSplitter] = []

    def make(sock: Any) -> PublishSplitter:
        splitter = PublishSplitter(
            sock, lambda *m: got.append(m), on_traffic=lambda: traffic.append(True)
        )
        made.append(splitter)
        return splitter

    install_splitter(client, make)
    # Port 9 on loopback: if paho opened its own socket, it fails at once.
    client.connect_async("127.0.0.1", 9, keepalive=60)
    client.reconnect()
    if not made:
        raise _changed("paho's reconnect no longer calls _create_socket")
    broker.settimeout(2)
    if broker.recv(4096)[:1] != b"\x10":
        raise _changed("no CONNECT written to the socket _create_socket returned")
    for name in ("_last_bytes_received", "_ping_t"):
        if not isinstance(getattr(client, name, None), (int, float)):
            raise _changed(f"paho.Client.{name} is not a number")
    broker.sendall(_CONNACK + _PUBLISH)
    for _ in range(10):
        client.loop_read()
    if paho_got or got != [("t", b"p", 1, 1)]:
        raise _changed("a PUBLISH was not delivered by the splitter alone")
    if not client.is_connected():
        raise _changed("paho did not take the CONNACK read through the splitter")
    if not traffic:
        raise _changed("the splitter's reads did not count as traffic")
    client._packet_queue(0x40, _PUBACK, 0, 0)
    if broker.recv(64) != _PUBACK:
        raise _changed("_packet_queue did not write our PUBACK")
    client._sock_close()
    if client._sock is not None or ours.fileno() != -1:
        raise _changed("_sock_close did not close the socket")
