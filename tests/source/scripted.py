"""A scripted MQTT v5 broker on a TCP port, for conditions Mosquitto cannot
produce on demand (a SUBACK that never comes, a late PINGRESP, a broker over
Receive Maximum, a lost PUBACK). Each accepted connection is a ``Peer`` that
records every packet the client sends and sends what the test says."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE = 0x10, 0x30, 0x40, 0x80, 0xA0
PINGREQ, DISCONNECT = 0xC0, 0xE0


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connack(session_present: bool = False) -> bytes:
    return packet(0x20, bytes([int(session_present), 0, 0]))


def suback(mid: int, count: int = 1) -> bytes:
    return packet(0x90, mid.to_bytes(2, "big") + b"\x00" + b"\x01" * count)


def unsuback(mid: int, count: int = 1) -> bytes:
    return packet(0xB0, mid.to_bytes(2, "big") + b"\x00" + b"\x00" * count)


PINGRESP = b"\xd0\x00"


def publish(topic: str, payload: bytes, mid: int = 0, qos: int = 1, dup: bool = False) -> bytes:
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw
    if qos:
        body += mid.to_bytes(2, "big")
    body += b"\x00" + payload  # no properties
    return packet(PUBLISH | int(dup) << 3 | qos << 1, body)


@dataclass
class Peer:
    """One client connection, seen from the broker."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    packets: asyncio.Queue[tuple[int, bytes]] = field(default_factory=asyncio.Queue)
    seen: list[tuple[int, bytes]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def expect(self, kind: int, timeout: float = 10) -> bytes:
        """The body of the next packet of this kind (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                first, body = await self.packets.get()
                if first & 0xF0 == kind:
                    return body

    def acked(self) -> list[int]:
        """Packet ids of the PUBACKs received so far, in order."""
        return [int.from_bytes(b[:2], "big") for f, b in self.seen if f & 0xF0 == PUBACK]

    def count(self, kind: int) -> int:
        return sum(1 for f, _ in self.seen if f & 0xF0 == kind)

    async def run(self) -> None:
        try:
            while True:
                first = (await self.reader.readexactly(1))[0]
                size, shift = 0, 0
                while True:
                    byte = (await self.reader.readexactly(1))[0]
                    size |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await self.reader.readexactly(size)
                self.seen.append((first, body))
                self.packets.put_nowait((first, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()

    def close(self) -> None:
        self.writer.close()


class ScriptedBroker:
    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.all: list[Peer] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ScriptedBroker:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.all:
            peer.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        self.all.append(peer)
        self._tasks.append(asyncio.create_task(peer.run()))
        self.peers.put_nowait(peer)

    async def next_peer(self, timeout: float = 10) -> Peer:
        async with asyncio.timeout(timeout):
            return await self.peers.get()

    async def accept(self, subscribe: bool = True, timeout: float = 10) -> Peer:
        """The next connection, answered: CONNACK, and SUBACK to its SUBSCRIBE."""
        peer = await self.next_peer(timeout)
        await peer.expect(CONNECT)
        peer.send(connack())
        if subscribe:
            body = await peer.expect(SUBSCRIBE)
            peer.send(suback(int.from_bytes(body[:2], "big")))
        return peer
