"""PUBLISH packets out of an MQTT v5 byte stream, beside paho.

``PublishSplitter`` stands in for paho's socket. Each ``recv`` reads the real
socket once, 64 KiB at most, hands every complete PUBLISH in it to
``on_message`` (in stream order) and keeps every other packet (CONNACK,
SUBACK, PINGRESP, DISCONNECT...), whole, for paho, which then reads them from
memory. Why: paho spends more on a PUBLISH than the bridge does on its
message (bridge/source/mqtt.py).

Invariants:
  * Framing never depends on the callback. Every byte read is framed before
    anything is delivered or raised; an incomplete last packet is kept for
    the next read. paho never sees a PUBLISH nor a part of a packet.
  * A callback error is logged, counted (``on_fault("callback_error")``) and
    ends the connection: nothing after it is delivered, ``recv`` raises
    ``CallbackFailed`` (an OSError, so paho drops the connection) and the
    broker redelivers every unacked message. A message is never skipped
    while the connection goes on.
  * At most ``receive_maximum`` QoS 1 messages are delivered and not yet
    ``acked``. When the broker sends more, the splitter counts it
    (``on_fault("receive_maximum_exceeded")``), holds the rest of that read
    undelivered and stops reading the socket (``blocked``; ``on_blocked`` is
    called) until acks make room. Memory stays bounded (Receive Maximum
    messages and one read) whatever the broker does, and nothing is lost.
    Mosquitto 2.0.11 does exceed it, right after a session resumes with
    messages in flight: dropping the connection instead would loop.
  * Stopped (``stop_delivery``, or ``close``): nothing more is delivered, and ``recv`` returns end
    of stream.
  * Paused (``paused``, set by the owner for backpressure): the real socket
    is not read (bytes already read for paho are still served).
  * Every read that brings bytes calls ``on_traffic``: PUBLISH bytes prove
    the broker alive as much as a PINGRESP does (paho's keepalive clock).
  * Properties are skipped, with one exception: the value of a user property
    named ``origin`` (an edge agent's gateway, spool epoch and sequence,
    bridge/receipts.py) goes to ``on_origin`` just before its message's
    ``on_message``. A PUBLISH without properties costs one test more; a
    property block that does not parse is ignored, never the message.

Errors of the real socket (BlockingIOError, SSLWantReadError, OSError) pass
through unchanged, and ``b""`` means end of stream. When nothing is left for
paho, ``recv`` raises BlockingIOError, which paho takes as "no data yet".
paho needs only ``recv`` and, for TLS, ``pending``; every other call goes to
the real socket.
"""

from __future__ import annotations

import array
import fcntl
import logging
import termios
from collections.abc import Callable
from typing import Any

from bridge.errors import BridgeError

log = logging.getLogger("bridge.source.wire")

# on_message(topic, payload, mid, qos): called on the event loop, must not block.
OnMessage = Callable[[str, bytes, int, int], None]
OnFault = Callable[[str], None]
# on_origin(value): the next on_message's message carries this origin.
OnOrigin = Callable[[str], None]

READ_CHUNK = 65536
PUBLISH = 0x30
USER_PROPERTY = 0x26
ORIGIN_KEY = b"origin"


class ProtocolViolation(BridgeError, ConnectionError):
    """The broker sent what MQTT does not allow: the connection is dropped
    (paho sees an OSError from ``recv``), and unacked messages are redelivered."""


class CallbackFailed(BridgeError, ConnectionError):
    """``on_message`` raised: the connection is dropped so that the broker
    redelivers what followed, rather than the bridge going on without it."""


def _nothing(*args: object) -> None:
    return None


class PublishSplitter:
    """A paho socket that takes PUBLISH packets out of the stream."""

    __slots__ = (
        "_failed",
        "_for_paho",
        "_held",
        "_held_before",
        "_need",
        "_on_blocked",
        "_on_fault",
        "_on_message",
        "_on_origin",
        "_on_traffic",
        "_partial",
        "_pos",
        "_receive_maximum",
        "_sock",
        "closed",
        "paused",
        "unacked",
    )

    def __init__(
        self,
        sock: Any,
        on_message: OnMessage,
        *,
        receive_maximum: int = 65_535,
        on_fault: OnFault = _nothing,
        on_traffic: Callable[[], None] = _nothing,
        on_blocked: Callable[[], None] = _nothing,
        on_origin: OnOrigin = _nothing,
    ) -> None:
        self._sock = sock
        self._on_origin = on_origin
        self._on_message = on_message
        self._on_fault = on_fault
        self._on_traffic = on_traffic
        self._on_blocked = on_blocked
        self._receive_maximum = receive_maximum
        self._for_paho = b""
        self._pos = 0
        self._partial = bytearray()  # the start of a packet that has not fully arrived
        self._need = 0  # its whole size, when its header has arrived
        self._held = b""  # bytes read, from the first PUBLISH over Receive Maximum on
        self._held_before = False
        self._failed: OSError | None = None  # why the stream ended, once it has
        self.unacked = 0  # QoS 1 messages delivered and not yet acked
        self.closed = False
        self.paused = False

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._for_paho):
            data = self._next_read()
            if not data:
                return data
            try:
                self._for_paho, self._pos = self._split(data), 0
            except ProtocolViolation as exc:
                self._failed = exc
            if self._failed is not None:
                # paho's packets of this read are left unread: the connection ends.
                self._for_paho = b""
                raise self._failed
            if not self._for_paho:
                raise BlockingIOError
        start = self._pos
        self._pos = min(start + size, len(self._for_paho))
        return self._for_paho[start : self._pos]

    def _next_read(self) -> bytes:
        """The next whole packets to split: held ones, or from the socket;
        b"" at end of stream. Raises BlockingIOError when there are none yet."""
        if self.closed:
            return b""
        if self._failed is not None:
            raise self._failed
        if self._held:
            if self.unacked >= self._receive_maximum:
                raise BlockingIOError  # the window is still full
            data, self._held = self._held, b""
            return data
        if self.paused:
            raise BlockingIOError
        data = bytes(self._sock.recv(READ_CHUNK))
        if not data:
            return data
        self._on_traffic()
        if self._partial:
            self._partial += data
            if len(self._partial) < self._need:
                raise BlockingIOError  # a large packet, still arriving
            data = bytes(self._partial)
            self._partial.clear()
        return data

    @property
    def blocked(self) -> bool:
        """True while the real socket must not be read."""
        return self.paused or (bool(self._held) and self.unacked >= self._receive_maximum)

    def pending(self) -> int:
        buffered = len(self._for_paho) - self._pos
        if self.closed or self._failed is not None:
            return buffered
        if self._held:
            return buffered + (0 if self.blocked else len(self._held))
        inner = getattr(self._sock, "pending", None)
        return buffered + (inner() if inner is not None and not self.paused else 0)

    def unread(self) -> int:
        """Bytes the broker sent that wait in the socket, unread: more than a
        read's worth (READ_CHUNK) means it sends faster than we take. 0 when
        the socket cannot tell (closed, or no such ioctl)."""
        if self.closed:
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, count)
        except (OSError, ValueError):
            return 0
        return count[0]

    def acked(self, count: int) -> None:
        """``count`` delivered QoS 1 messages were PUBACKed."""
        self.unacked = max(0, self.unacked - count)

    def stop_delivery(self) -> None:
        """Delivers nothing more; paho reads end of stream."""
        self.closed = True

    def close(self) -> None:
        """paho's close: closes the real socket too."""
        self.closed = True
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _split(self, data: bytes) -> bytes:  # noqa: PLR0912, PLR0915 - one pass per message
        """Delivers the PUBLISH packets of ``data``; returns the other packets'
        bytes, and keeps an incomplete last packet for the next read. Frames
        all of ``data`` even when delivery stops part way.

        The bridge's hot path, one pass per message: lengths of one or two
        bytes and an empty property list are read inline, and a PUBLISH is
        parsed here rather than in a method of its own (with a no-op
        callback, 1.4-1.7 us per single-reading message before, 1.0-1.1
        after)."""
        others: list[bytes] = []
        on_message = self._on_message
        receive_maximum = self._receive_maximum
        pos, n = 0, len(data)
        while pos < n:
            first = data[pos]
            # The Remaining Length: one or two bytes inline, else _varint.
            i = pos + 2
            size = data[pos + 1] if i <= n else 0x80
            if size & 0x80:
                if i < n and not data[i] & 0x80:
                    size = (size & 0x7F) | data[i] << 7
                    i += 1
                else:
                    i, size = _varint(data, pos + 1, n)
            end = i + size
            if i < 0 or end > n:
                self._partial += data[pos:]
                self._need = end - pos if i >= 0 else 0
                break
            if first & 0xF0 != PUBLISH:
                others.append(data[pos:end])
                pos = end
                continue
            if first & 6 and self.unacked >= receive_maximum:
                self._hold(data[pos:])
                break
            pos = end
            if self._failed is not None or self.closed:
                continue  # framed, not delivered
            qos = (first >> 1) & 3
            if qos > 1:
                # Subscriptions are QoS 1: the broker must not send QoS 2.
                raise ProtocolViolation(f"QoS {qos} PUBLISH from the broker")
            topic_end = i + 2 + (data[i] << 8 | data[i + 1]) if size >= 2 else end + 1
            mid = 0
            if qos and topic_end + 2 <= end:
                mid = data[topic_end] << 8 | data[topic_end + 1]
                topic_end += 2
            if topic_end < end and not data[topic_end] & 0x80:  # properties: one length byte
                props = topic_end + 1
                payload_at = props + data[topic_end]
            else:
                props, props_size = _varint(data, topic_end, end)  # -1 past the end
                payload_at = props + props_size
            if props < 0 or payload_at > end or (qos and not mid):
                raise ProtocolViolation("malformed PUBLISH packet from the broker")
            if qos:
                self.unacked += 1
            raw_topic = data[i + 2 : topic_end - 2 * qos]
            try:
                topic = raw_topic.decode()
            except UnicodeDecodeError:
                topic = raw_topic.decode("utf-8", "replace")
            try:
                if payload_at > props:  # properties: perhaps an origin (receipts)
                    origin = _origin(data, props, payload_at)
                    if origin is not None:
                        self._on_origin(origin)
                on_message(topic, data[payload_at:end], mid, qos)
            except Exception as exc:
                log.exception("message handler failed on %r; dropping the connection", topic[:200])
                self._fail("callback_error", CallbackFailed(f"message handler failed: {exc!r}"))
        return b"".join(others)

    def _fail(self, fault: str, error: OSError) -> None:
        self._failed = error
        self._on_fault(fault)

    def _hold(self, rest: bytes) -> None:
        if not self._held_before:
            self._held_before = True  # once per connection: Mosquitto does it on resume
            log.warning(
                "the broker sent more than Receive Maximum (%d) unacked messages; "
                "holding the rest until acks make room",
                self._receive_maximum,
            )
        self._held = rest
        self._on_fault("receive_maximum_exceeded")
        self._on_blocked()


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


# Sizes of the fixed-size PUBLISH properties: payload format, message expiry,
# topic alias. Strings and binary data (content type, response topic,
# correlation data) have a 2-byte length; a subscription id is a varint.
_FIXED = {0x01: 1, 0x02: 4, 0x23: 2}
_PREFIXED = frozenset((0x03, 0x08, 0x09))


def _origin(data: bytes, i: int, end: int) -> str | None:
    """The value of the user property ``origin`` among the properties in
    ``data[i:end]``; None when there is none or the block does not parse."""
    try:
        while i < end:
            ident = data[i]
            i += 1
            if ident == USER_PROPERTY:
                key_end = i + 2 + (data[i] << 8 | data[i + 1])
                value_at = key_end + 2
                value_end = value_at + (data[key_end] << 8 | data[key_end + 1])
                if data[i + 2 : key_end] == ORIGIN_KEY and value_end <= end:
                    return data[value_at:value_end].decode()
                i = value_end
            elif ident in _FIXED:
                i += _FIXED[ident]
            elif ident in _PREFIXED:
                i += 2 + (data[i] << 8 | data[i + 1])
            elif ident == 0x0B:
                i, _ = _varint(data, i, end)
                if i < 0:
                    return None
            else:
                return None
    except (IndexError, UnicodeDecodeError, ProtocolViolation):
        return None
    return None
