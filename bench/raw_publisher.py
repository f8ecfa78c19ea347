"""A QoS 1 MQTT v5 publisher on a plain socket, for load generation.

The bench shares the machine's cores with the bridge, so every microsecond
the load generator spends is one the bridge does not get. paho costs 40-45 µs
of CPU per message here; this costs a few: messages are encoded before the
clock starts, written many at a time, and the broker's PUBACKs are parsed
from one buffer.

Delivery is checked, not assumed:

  * at most ``window`` messages are unacked (a PUBACK each, QoS 1), and never
    more than the broker's Receive Maximum from CONNACK;
  * a PUBACK with reason 0x10 (no matching subscribers) means the broker
    dropped the message: it is published again (after ``retry_delay_s``) and
    counted in ``retried``;
  * any other reason code >= 0x80, or any packet but PUBACK, raises.

Packet ids are handed out in sequence and are never reused while in flight
(the window is far below 65535).
"""

from __future__ import annotations

import select
import socket
import time
from collections import deque

PUBLISH_QOS1 = 0x32
PUBACK = 0x40
NO_MATCHING_SUBSCRIBERS = 0x10
SEND_CHUNK = 65536  # bytes written per send() at most


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


class Encoded:
    """One PUBLISH packet, split around its packet id (filled in when sent)."""

    __slots__ = ("head", "tail")

    def __init__(self, topic: str, payload: bytes) -> None:
        topic_bytes = _string(topic)
        # topic, packet id (2), properties length 0 (1), payload
        size = len(topic_bytes) + 2 + 1 + len(payload)
        self.head = bytes([PUBLISH_QOS1]) + varint(size) + topic_bytes
        self.tail = b"\x00" + payload


class RawPublisher:
    def __init__(
        self,
        port: int,
        client_id: str,
        window: int,
        *,
        host: str = "127.0.0.1",
        retry_delay_s: float = 0.05,
        give_up_s: float = 120.0,
    ) -> None:
        self.sent = 0  # PUBLISH packets written, retries included
        self.acked = 0  # PUBACKs with a success reason
        self.retried = 0  # messages published again after "no matching subscribers"
        self._retry_delay_s = retry_delay_s
        self._give_up_s = give_up_s
        self._inflight: dict[int, Encoded] = {}
        self._retry: deque[tuple[float, Encoded]] = deque()
        self._next_id = 0
        self._rbuf = bytearray()
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.window = min(window, self._connect(client_id))
        self._sock.setblocking(False)

    # ------------------------------------------------------------ session
    def _connect(self, client_id: str) -> int:
        """CONNECT (v5, clean start, no keepalive); returns the broker's Receive Maximum."""
        variable = _string("MQTT") + bytes([5, 0x02]) + (0).to_bytes(2, "big") + b"\x00"
        body = variable + _string(client_id)
        self._sock.sendall(bytes([0x10]) + varint(len(body)) + body)
        kind, packet = self._read_packet_blocking()
        if kind != 0x20 or len(packet) < 2 or packet[1] != 0:
            raise RuntimeError(f"CONNACK refused: type {kind:#x}, body {bytes(packet)!r}")
        return _receive_maximum(packet[2:])

    def _read_packet_blocking(self) -> tuple[int, bytearray]:
        while True:
            parsed = _split_packet(self._rbuf)
            if parsed is not None:
                kind, body, used = parsed
                del self._rbuf[:used]
                return kind, body
            data = self._sock.recv(SEND_CHUNK)
            if not data:
                raise RuntimeError("broker closed the connection")
            self._rbuf += data

    def close(self) -> None:
        try:
            self._sock.setblocking(True)
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        except OSError:
            pass
        self._sock.close()

    # ------------------------------------------------------------ publishing
    @property
    def unacked(self) -> int:
        return len(self._inflight) + len(self._retry)

    def publish(self, messages: list[Encoded]) -> None:
        """Writes every message, keeping at most ``window`` unacked; returns once
        all are written (not necessarily acked)."""
        pos = 0
        while pos < len(messages):
            before = pos
            pos = self._write_chunk(messages, pos)
            # Wait for acks only when the window is full.
            self._read(block=pos == before)

    def wait_acked(self) -> None:
        """Returns when every message written has been acked with success,
        publishing again those the broker had no subscriber for."""
        deadline = time.monotonic() + self._give_up_s
        while self._inflight or self._retry:
            self._write_chunk([], 0)
            self._read(block=True)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"broker PUBACKs stalled: {self.acked} acked of {self.sent} written, "
                    f"{len(self._retry)} waiting for a subscriber"
                )

    def _write_chunk(self, messages: list[Encoded], pos: int) -> int:
        """Writes due retries first, then messages from ``pos``, as many as the
        window allows (up to SEND_CHUNK bytes); returns the new ``pos``."""
        room = self.window - len(self._inflight)
        chunk: list[bytes] = []
        size = 0
        total = len(messages)
        while room > 0 and size < SEND_CHUNK:
            if self._retry and self._retry[0][0] <= time.monotonic():
                msg = self._retry.popleft()[1]
            elif pos < total:
                msg = messages[pos]
                pos += 1
            else:
                break
            packet = self._packet(msg)
            chunk.append(packet)
            size += len(packet)
            room -= 1
        if chunk:
            self._send(b"".join(chunk))
        return pos

    def poll(self) -> None:
        """Takes whatever PUBACKs have arrived, without waiting."""
        self._read(block=False)

    def _packet(self, msg: Encoded) -> bytes:
        mid = self._next_id % 65535 + 1
        self._next_id += 1
        if mid in self._inflight:
            raise RuntimeError(f"packet id {mid} still in flight: window too large")
        self._inflight[mid] = msg
        self.sent += 1
        return msg.head + mid.to_bytes(2, "big") + msg.tail

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self._sock.send(view)
            except BlockingIOError:
                # The broker is not reading: take its acks while we wait,
                # so neither side blocks on a full buffer.
                select.select([self._sock], [self._sock], [], 1.0)
                self._read(block=False)
                continue
            view = view[n:]

    def _read(self, block: bool) -> None:
        if block:
            select.select([self._sock], [], [], 0.05 if self._retry else 1.0)
        while True:
            try:
                data = self._sock.recv(SEND_CHUNK)
            except BlockingIOError:
                break
            if not data:
                raise RuntimeError("broker closed the connection")
            self._rbuf += data
            if len(data) < SEND_CHUNK:
                break
        self._take_acks()

    def _take_acks(self) -> None:
        buf = self._rbuf
        pos = 0
        retry_at = time.monotonic() + self._retry_delay_s
        while True:
            parsed = _split_packet(buf, pos)
            if parsed is None:
                break
            kind, body, pos = parsed
            if kind != PUBACK:
                raise RuntimeError(f"unexpected packet type {kind:#x} from the broker")
            mid = int.from_bytes(body[:2], "big")
            reason = body[2] if len(body) > 2 else 0
            msg = self._inflight.pop(mid)
            if reason == NO_MATCHING_SUBSCRIBERS:
                self._retry.append((retry_at, msg))
                self.retried += 1
            elif reason >= 0x80:
                raise RuntimeError(f"PUBACK for packet {mid}: reason code {reason:#x}")
            else:
                self.acked += 1
        del buf[:pos]


def _split_packet(buf: bytearray, pos: int = 0) -> tuple[int, bytearray, int] | None:
    """(packet type, body, end position) of the packet at ``pos``, or None when
    it has not fully arrived."""
    if len(buf) - pos < 2:
        return None
    kind = buf[pos] & 0xF0
    size, shift, i = 0, 0, pos + 1
    while True:
        if i >= len(buf):
            return None
        byte = buf[i]
        size |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
    end = i + size
    if end > len(buf):
        return None
    return kind, buf[i:end], end


def _receive_maximum(props_and_rest: bytearray) -> int:
    """The Receive Maximum property (0x21) of a CONNACK; 65535 when absent."""
    size, shift, i = 0, 0, 0
    while True:
        byte = props_and_rest[i]
        size |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
    props, end = props_and_rest[i : i + size], 0
    while end < len(props):
        ident = props[end]
        end += 1
        if ident == 0x21:
            return int.from_bytes(props[end : end + 2], "big")
        end += _property_size(ident, props, end)
    return 65535


def _property_size(ident: int, props: bytearray, at: int) -> int:
    """Bytes taken by the value of a CONNACK property, to skip it."""
    if ident in (0x24, 0x25, 0x28, 0x29, 0x2A):  # byte
        return 1
    if ident in (0x13, 0x22):  # two-byte integer (0x21 is handled by the caller)
        return 2
    if ident in (0x11, 0x27):  # four-byte integer
        return 4
    if ident == 0x26:  # user property: two strings
        first = 2 + int.from_bytes(props[at : at + 2], "big")
        return first + 2 + int.from_bytes(props[at + first : at + first + 2], "big")
    # strings and binary data: 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F
    return 2 + int.from_bytes(props[at : at + 2], "big")
