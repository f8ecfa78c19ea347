"""One MQTT v5 connection with a persistent session and manual acks.

The contract: ``connect``, then ``subscribe``; each message goes to the
``on_message`` callback synchronously on the event loop, and nothing is
acknowledged until the caller calls ``ack``. ``closed`` completes when the
connection drops; ``close`` ends it, keeping the broker session or ending it.
Reconnecting, backoff and shutdown belong to the pipeline, not here.

Why it looks the way it does (measured on Mosquitto 2.0.11, see MEASURED.md):
  * paho's automatic acks PUBACK on receipt, which loses messages on a crash:
    manual acks are switched on *before* connecting, or the redeliveries that
    follow CONNACK are acked automatically.
  * aiomqtt's default clean start wipes the session and its unacked messages
    on a fresh process's first connect: we always resume (clean_start False)
    and ask for a session expiry.
  * aiomqtt's ``messages`` iterator costs a queue and an await per message and
    tops out near 6-9k msg/s; a paho ``on_message`` callback on the same client
    runs 2-3x faster, so the callback feeds the batcher directly.
  * The Receive Maximum we send caps unacked messages in flight: it is the
    bridge's memory bound, and it replaces the broker's max_inflight_messages.
  * paho reads one packet per ``loop_read`` with several small ``recv`` calls,
    and aiomqtt calls it once per socket wake-up: for small messages the
    system calls and wake-ups cost more than the message (38-45% of the
    bridge's time, bench/README.md). ``BufferedSocket`` reads 64 KiB at a time
    and serves paho's reads from memory; its ``pending()`` makes aiomqtt keep
    reading until the buffer is empty (the same path TLS sockets take).

aiomqtt (2.5) runs the connection lifecycle on the event loop; the paho client
it wraps is reached through ``_client``, in this module only, because aiomqtt
has no ack API yet (its issue #345). pyproject pins aiomqtt below 2.6 for this.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import MqttSettings

log = logging.getLogger("bridge.source.mqtt")

# on_message(topic, payload, mid, qos): called on the event loop, must not block.
OnMessage = Callable[[str, bytes, int, int], None]

READ_CHUNK = 65536


class BufferedSocket:
    """A paho socket whose reads come from a buffer filled 64 KiB at a time.

    paho needs only ``recv`` and, for TLS, ``pending``; every other call goes
    to the real socket. ``recv`` raises exactly what the socket raises (so
    paho sees BlockingIOError / SSLWantReadError as before) and returns b""
    at end of stream.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buf):
            data: bytes = self._sock.recv(READ_CHUNK)
            if not data:
                return data
            self._buf, self._pos = data, 0
        start = self._pos
        self._pos = min(start + size, len(self._buf))
        return self._buf[start : self._pos]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class MqttSource:
    def __init__(self, settings: MqttSettings, client_id: str, on_message: OnMessage) -> None:
        self.client_id = client_id
        self.session_present = False
        self._settings = settings
        self._on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry_s
        props.ReceiveMaximum = settings.receive_maximum
        tls = None
        if settings.tls is not None:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(settings.tls.ca_file) if settings.tls.ca_file else None,
                certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
                keyfile=str(settings.tls.key_file) if settings.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self._client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=settings.keepalive_s,
            tls_params=tls,
            timeout=10,
        )
        inner = self._paho = self._client._client  # see the module docstring
        inner.manual_ack_set(True)
        create_socket = inner._create_socket
        inner._create_socket = lambda: BufferedSocket(create_socket())  # type: ignore[method-assign]
        inner.on_message = self._message
        aiomqtt_on_connect = inner.on_connect
        assert aiomqtt_on_connect is not None

        def on_connect(client: paho.Client, userdata: Any, flags: Any, *rest: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            aiomqtt_on_connect(client, userdata, flags, *rest)

        inner.on_connect = on_connect

    def _message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        self._on_message(topic, bytes(msg.payload), msg.mid, msg.qos)

    async def connect(self) -> None:
        """Connects and resumes the session. Raises aiomqtt.MqttError."""
        await self._client.__aenter__()

    async def subscribe(self, filters: list[str]) -> None:
        await self._client.subscribe([(f, 1) for f in filters])

    async def unsubscribe(self, filters: list[str]) -> None:
        await self._client.unsubscribe(filters)

    async def closed(self) -> None:
        """Returns when the connection is gone, for whatever reason."""
        disconnected: asyncio.Future[None] = self._client._disconnected
        await asyncio.wait([disconnected])

    def ack(self, mid: int) -> None:
        # On a dead connection this fails quietly; the broker redelivers.
        self._paho.ack(mid, 1)

    async def close(self, end_session: bool = False) -> None:
        """Disconnects. ``end_session`` sets session expiry 0, so the broker drops
        this client's session and its share-group membership for good."""
        if self._client._disconnected.done():
            return
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._paho.disconnect(properties=props)
            try:
                await asyncio.wait_for(self.closed(), timeout=10)
            except TimeoutError:
                log.warning("broker did not close the connection after DISCONNECT")
        try:
            await self._client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            log.debug("disconnect: %s", exc)
