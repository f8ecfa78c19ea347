"""One MQTT v5 connection with a persistent session and manual acks.

The contract: ``connect``, then ``subscribe``; each message goes to the
``on_message`` callback synchronously on the event loop, and nothing is
acknowledged until the caller calls ``ack``. ``closed`` completes when the
connection drops; ``close`` ends it, keeping the broker session or ending it.
Reconnecting and backoff belong to bridge/source/session.py, not here.

Invariants:
  * A source is used for one connection. ``close`` always releases its
    socket, whatever state the connection is in (connect or subscribe that
    failed, a read that raised), and once ``close`` has begun the source
    delivers nothing more and sends no ack.
  * At most ``receive_maximum`` delivered messages are unacked: the bridge
    checks it itself (bridge/source/wire.py) rather than trust the broker,
    which is seen to exceed it (Mosquitto 2.0.11, on session resume).
  * ``pause_reading`` stops reading the socket (backpressure: nothing is
    dropped, the broker and TCP hold the rest); ``resume_reading`` reads on.
    The same happens while a broker over Receive Maximum waits for acks.
    While not reading, the keepalive clock is kept fresh: the broker is not
    silent, we are not listening.
  * Received PUBLISH bytes count as traffic for paho's keepalive.

Why it looks the way it does (measured on Mosquitto 2.0.11):
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
    So ``PublishSplitter`` (bridge/source/wire.py) parses PUBLISH packets
    itself and calls ``on_message`` directly; paho still sees, and handles,
    everything else (CONNACK, SUBACK, PINGRESP, DISCONNECT). The properties of
    a PUBLISH are skipped: the bridge uses none of them, and without a Topic
    Alias Maximum in our CONNECT the broker sends no aliases. The one
    exception is an edge agent's ``origin`` user property (bridge/receipts.py).
  * A PUBACK per ``ack`` call is a wake-up and a ``send()`` each; ``ack`` takes
    a batch's packet ids and writes all their PUBACKs at once.
  * CONNECT carries Receive Maximum (the in-flight bound, which replaces the
    broker's max_inflight_messages) and Maximum Packet Size, so that the
    broker drops a PUBLISH bigger than we take instead of sending it.

aiomqtt runs the connection lifecycle on the event loop; the paho client it
wraps is reached through ``_client``, in this module only, because aiomqtt
has no ack API yet (its issue #345). What of paho's and aiomqtt's insides this
relies on is listed, and checked at startup, in bridge/source/internals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import MqttSettings, TlsSettings
from bridge.source.internals import install_splitter
from bridge.source.wire import OnFault, OnMessage, OnOrigin, PublishSplitter

log = logging.getLogger("bridge.source.mqtt")

PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")
PAUSED_TICK_S = 1.0  # how often the keepalive clock is refreshed while paused


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


def connect_properties(settings: MqttSettings) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.session_expiry_s
    props.ReceiveMaximum = settings.receive_maximum
    props.MaximumPacketSize = settings.max_packet_bytes
    return props


def _ignore(value: str) -> None:
    return None


class MqttSource:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        on_message: OnMessage,
        on_fault: OnFault = _ignore,
        *,
        on_origin: OnOrigin = _ignore,
        will: aiomqtt.Will | None = None,
    ) -> None:
        """``will``: the message the broker publishes if this connection
        dies (the Sparkplug primary host's STATE)."""
        self.client_id = client_id
        self.session_present = False
        self._settings = settings
        self._closing = False
        self._splitter: PublishSplitter | None = None
        self._paused_tick: asyncio.TimerHandle | None = None
        self._reader_removed = False  # by us: the splitter is blocked
        self._client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=connect_properties(settings),
            keepalive=settings.keepalive_s,
            tls_params=tls_parameters(settings.tls),
            timeout=settings.request_timeout_s,
            will=will,
        )
        self._loop = asyncio.get_running_loop()
        inner = self._paho = self._client._client  # see the module docstring
        inner.manual_ack_set(True)

        def make_splitter(sock: Any) -> PublishSplitter:
            splitter = PublishSplitter(
                sock,
                on_message,
                receive_maximum=settings.receive_maximum,
                on_fault=on_fault,
                on_traffic=self._traffic,
                on_blocked=self._sync_reader,
                on_origin=on_origin,
            )
            if self._closing:
                splitter.stop_delivery()
            self._splitter = splitter
            return splitter

        install_splitter(inner, make_splitter)
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

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publishes on this connection; QoS 1 returns on the broker's PUBACK.
        Raises aiomqtt.MqttError if the connection cannot take it."""
        await self._client.publish(
            topic,
            payload,
            qos=qos,
            retain=retain,
            properties=properties,
            timeout=self._settings.request_timeout_s,
        )

    @property
    def up(self) -> bool:
        """Connected, and not closing: ``publish`` may be called."""
        connected = self._client._connected
        return (
            not self._closing
            and connected.done()
            and not connected.cancelled()
            and connected.exception() is None
            and not self._client._disconnected.done()
        )

    async def closed(self) -> None:
        """Returns when the connection is gone, for whatever reason."""
        disconnected: asyncio.Future[None] = self._client._disconnected
        await asyncio.wait([disconnected])

    @property
    def unacked(self) -> int:
        """Messages delivered on this connection and not yet acked."""
        return self._splitter.unacked if self._splitter is not None else 0

    @property
    def unread(self) -> int:
        """Bytes the broker sent that wait in the socket, unread."""
        return self._splitter.unread() if self._splitter is not None else 0

    def ack(self, mids: list[int]) -> None:
        """PUBACKs these packet ids, in this order, in one write: a batch's acks
        cost one system call, not one each. Nothing once closing."""
        # On a dead connection this fails quietly; the broker redelivers.
        splitter = self._splitter
        if mids and not self._closing and splitter is not None:
            data = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
            self._paho._packet_queue(PUBACK, data, 0, 0)
            splitter.acked(len(mids))
            if self._reader_removed:
                self._sync_reader()  # the window may have room again

    def pause_reading(self) -> None:
        """Stops reading the socket until ``resume_reading``."""
        if self._splitter is not None and not self._splitter.paused:
            self._splitter.paused = True
            self._sync_reader()

    def resume_reading(self) -> None:
        if self._splitter is not None and self._splitter.paused:
            self._splitter.paused = False
            self._sync_reader()

    @property
    def paused(self) -> bool:
        return self._splitter is not None and self._splitter.paused

    def _sync_reader(self) -> None:
        """Reads the socket unless the splitter is blocked (paused, or the
        broker went over Receive Maximum and acks have not made room yet)."""
        splitter, sock = self._splitter, self._paho._sock
        if splitter is None or sock is None or self._closing:
            return
        if splitter.blocked and not self._reader_removed:
            self._loop.remove_reader(sock.fileno())
            self._reader_removed = True
            self._paused_tick = self._loop.call_later(PAUSED_TICK_S, self._tick_while_paused)
        elif not splitter.blocked and self._reader_removed:
            self._reader_removed = False
            if self._paused_tick is not None:
                self._paused_tick.cancel()
                self._paused_tick = None
            self._loop.add_reader(sock.fileno(), self._read_ready)
            self._loop.call_soon(self._read_ready)  # bytes held, or kept by TLS or paho

    async def close(self, end_session: bool = False) -> None:
        """Disconnects and releases the socket, whatever state the connection
        is in. ``end_session`` sets session expiry 0, so the broker drops this
        client's session and its share-group membership for good."""
        self._closing = True
        if self._splitter is not None:
            self._splitter.stop_delivery()
        if self._paused_tick is not None:
            self._paused_tick.cancel()
        try:
            connected = self._client._connected
            if connected.done() and not connected.exception():
                await self._disconnect(end_session)
        finally:
            # paho closes its socket on a lost connection, but not when a read
            # raised something other than OSError, nor when CONNACK or SUBACK
            # never came: close it here, whatever happened.
            self._paho._sock_close()
            disconnected = self._client._disconnected
            if not disconnected.done():
                disconnected.set_result(None)
            elif not disconnected.cancelled():
                disconnected.exception()  # seen: why it dropped was logged already

    async def _disconnect(self, end_session: bool) -> None:
        if self._client._disconnected.done():
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)
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
            await asyncio.wait_for(self._client.__aexit__(None, None, None), timeout=10)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.debug("disconnect: %s", exc)

    def _traffic(self) -> None:
        # Bytes from the broker prove it alive, as a PINGRESP would: paho's
        # keepalive otherwise drops a connection busy delivering PUBLISHes
        # when a PINGRESP queued behind them arrives late.
        inner = self._paho
        inner._last_bytes_received = paho.time_func()
        inner._ping_t = 0

    def _tick_while_paused(self) -> None:
        if self._reader_removed and not self._closing:
            self._traffic()
            self._paused_tick = self._loop.call_later(PAUSED_TICK_S, self._tick_while_paused)

    def _read_ready(self) -> None:
        # As aiomqtt's own reader: read what is there; an error ends the connection.
        client = self._paho
        try:
            while client._sock is not None:
                client.loop_read()
                if self._splitter is None or not self._splitter.pending():
                    break
        except Exception as exc:
            if not self._client._disconnected.done():
                self._client._disconnected.set_exception(exc)
