"""One MQTT v5 connection with a persistent session and manual acks.

The contract: ``connect``, then ``subscribe``; each message goes to the
``on_message`` callback synchronously on the event loop, and nothing is
acknowledged until the caller calls ``ack``. ``closed`` completes when the
connection drops; ``close`` ends it, keeping the broker session or ending it.
Reconnecting, backoff and shutdown belong to the pipeline, not here.

Why it looks the way it does (each point found against Mosquitto 2.0.11):
  * paho's automatic acks PUBACK on receipt, which loses messages on a crash:
    manual acks are switched on *before* connecting, or the redeliveries that
    follow CONNACK are acked automatically.
  * aiomqtt's default clean start wipes the session and its unacked messages
    on a fresh process's first connect: we always resume (clean_start False)
    and ask for a session expiry.
  * aiomqtt's ``messages`` iterator costs a queue and an await per message and
    tops out near 6-9k msg/s; even a paho ``on_message`` callback spends more
    on paho than on the message: one ``loop_read`` and several small reads per
    packet, a ``Properties`` object and an ``MQTTMessage`` per PUBLISH (about
    half of the bridge's time with single-reading messages, bench/README.md).
    So ``PublishSplitter`` reads the socket 64 KiB at a time, parses PUBLISH
    packets itself and calls ``on_message`` directly; paho still sees, and
    handles, everything else (CONNACK, SUBACK, PINGRESP, DISCONNECT). The
    properties of a PUBLISH are skipped: the bridge uses none of them, and
    without a Topic Alias Maximum in our CONNECT the broker sends no aliases.
  * A PUBACK per ``ack`` call is a wake-up and a ``send()`` each; ``ack`` takes
    a batch's packet ids and writes all their PUBACKs at once.
  * The Receive Maximum we send caps unacked messages in flight: it is the
    bridge's memory bound, and it replaces the broker's max_inflight_messages.

aiomqtt (2.5) runs the connection lifecycle on the event loop; the paho client
it wraps is reached through ``_client``, in this module only, because aiomqtt
has no ack API yet (its issue #345). Of paho (2.2) we use ``_create_socket``
and ``_packet_queue`` (which queues bytes behind paho's own packets, so a
partly written packet is never interleaved). pyproject pins aiomqtt below 2.6
and paho below 3 for this.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import MqttSettings, TlsSettings
from bridge.errors import BridgeError

log = logging.getLogger("bridge.source.mqtt")

# on_message(topic, payload, mid, qos): called on the event loop, must not block.
OnMessage = Callable[[str, bytes, int, int], None]

READ_CHUNK = 65536
PUBLISH = 0x30
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")


class ProtocolViolation(BridgeError, ConnectionError):
    """The broker sent what MQTT does not allow: the connection is dropped
    (paho sees an OSError from ``recv``), and unacked messages are redelivered."""


class PublishSplitter:
    """A paho socket that takes PUBLISH packets out of the stream.

    Each ``recv`` reads the real socket once, 64 KiB at most, hands every
    complete PUBLISH in it to ``on_message`` (in stream order) and keeps every
    other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT...), whole, for paho, which then reads them from memory. When nothing is left
    for paho, ``recv`` raises BlockingIOError, which paho takes as "no data
    yet". Errors of the real socket (BlockingIOError, SSLWantReadError, OSError)
    pass through unchanged, and ``b""`` means end of stream. paho needs only
    ``recv`` and, for TLS, ``pending``; every other call goes to the real
    socket.
    """

    __slots__ = ("_for_paho", "_need", "_on_message", "_partial", "_pos", "_sock")

    def __init__(self, sock: Any, on_message: OnMessage) -> None:
        self._sock = sock
        self._on_message = on_message
        self._for_paho = b""
        self._pos = 0
        self._partial = bytearray()  # the start of a packet that has not fully arrived
        self._need = 0  # its whole size, when its header has arrived

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._for_paho):
            data: bytes = self._sock.recv(READ_CHUNK)
            if not data:
                return data
            if self._partial:
                self._partial += data
                if len(self._partial) < self._need:
                    raise BlockingIOError  # a large packet, still arriving
                data = bytes(self._partial)
                self._partial.clear()
            self._for_paho, self._pos = self._split(data), 0
            if not self._for_paho:
                raise BlockingIOError
        start = self._pos
        self._pos = min(start + size, len(self._for_paho))
        return self._for_paho[start : self._pos]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._for_paho) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _split(self, data: bytes) -> bytes:
        """Delivers the PUBLISH packets of ``data``; returns the other packets'
        bytes, and keeps an incomplete last packet for the next read."""
        others: list[bytes] = []
        on_message = self._on_message
        pos, n = 0, len(data)
        while pos < n:
            first = data[pos]
            i, size = _varint(data, pos + 1, n)
            end = i + size
            if i < 0 or end > n:
                self._partial += data[pos:]
                self._need = end - pos if i >= 0 else 0
                break
            if first & 0xF0 == PUBLISH:
                qos = (first >> 1) & 3
                if qos > 1:
                    # Subscriptions are QoS 1: the broker must not send QoS 2.
                    raise ProtocolViolation(f"QoS {qos} PUBLISH from the broker")
                topic_end = i + 2 + (data[i] << 8 | data[i + 1]) if size >= 2 else end + 1
                mid = 0
                if qos and topic_end + 2 <= end:
                    mid = data[topic_end] << 8 | data[topic_end + 1]
                    topic_end += 2
                props, props_size = _varint(data, topic_end, end)  # -1 past the end
                payload_at = props + props_size
                if props < 0 or payload_at > end or (qos and not mid):
                    raise ProtocolViolation("malformed PUBLISH packet from the broker")
                raw_topic = data[i + 2 : topic_end - 2 * qos]
                try:
                    topic = raw_topic.decode()
                except UnicodeDecodeError:
                    topic = raw_topic.decode("utf-8", "replace")
                on_message(topic, data[payload_at:end], mid, qos)
            else:
                others.append(data[pos:end])
            pos = end
        return b"".join(others)


def _varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    """(position after, value) of the MQTT variable byte integer at ``i``;
    position -1 when it runs past ``end`` (not arrived yet, or malformed)."""
    value, shift = 0, 0
    while i < end:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return i, value
        shift += 7
        if shift > 21:
            raise ProtocolViolation("a length of more than 4 bytes from the broker")
    return -1, 0


def tls_parameters(tls: TlsSettings | None) -> aiomqtt.TLSParameters | None:
    """aiomqtt's TLS parameters for these settings; None: plain MQTT."""
    if tls is None:
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )


class MqttSource:
    def __init__(self, settings: MqttSettings, client_id: str, on_message: OnMessage) -> None:
        self.client_id = client_id
        self.session_present = False
        self._settings = settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry_s
        props.ReceiveMaximum = settings.receive_maximum
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
            tls_params=tls_parameters(settings.tls),
            timeout=10,
        )
        inner = self._paho = self._client._client  # see the module docstring
        inner.manual_ack_set(True)
        create_socket = inner._create_socket

        def splitter() -> PublishSplitter:
            return PublishSplitter(create_socket(), on_message)

        inner._create_socket = splitter  # type: ignore[method-assign]
        aiomqtt_on_connect = inner.on_connect
        assert aiomqtt_on_connect is not None

        def on_connect(client: paho.Client, userdata: Any, flags: Any, *rest: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            aiomqtt_on_connect(client, userdata, flags, *rest)

        inner.on_connect = on_connect

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

    def ack(self, mids: list[int]) -> None:
        """PUBACKs these packet ids, in this order, in one write: a batch's acks
        cost one system call, not one each."""
        # On a dead connection this fails quietly; the broker redelivers.
        if mids:
            data = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
            self._paho._packet_queue(PUBACK, data, 0, 0)

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
