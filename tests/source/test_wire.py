"""The MQTT read path: PUBLISH packets out of the byte stream, whatever the
reads cut them into; everything else left whole for paho."""

from __future__ import annotations

import contextlib
import itertools
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.source.wire import (
    READ_CHUNK,
    CallbackFailed,
    ProtocolViolation,
    PublishSplitter,
)

CONNACK = b"\x20\x03\x01\x00\x00"  # session present, success, no properties
PINGRESP = b"\xd0\x00"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, mid: int = 0, qos: int = 1, props: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    body += varint(len(props)) + props + payload
    return bytes([0x30 | qos << 1]) + varint(len(body)) + body


class Chunks:
    """A non-blocking socket that returns the given chunks, one per recv."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)


def read_all(splitter: PublishSplitter, reads: int) -> bytes:
    """What paho reads, a byte at a time as it does for headers."""
    out = b""
    for _ in range(reads):
        try:
            out += splitter.recv(1)
        except BlockingIOError:
            continue
    return out


def stream() -> tuple[bytes, list[tuple[str, bytes, int, int]]]:
    props = b"\x01\x01" + b"\x26\x00\x01k\x00\x01v"  # payload format, a user property
    big = b"x" * 70_000  # longer than one read
    data = (
        CONNACK
        + publish(b"telemetry/s/d1", b'{"a": 1}', mid=1)
        + publish(b"telemetry/s/d2", b"", mid=2, props=props)
        + PINGRESP
        + publish(b"telemetry/s/d3", b"42", qos=0)
        + publish(b"telemetry/s/\xff", big, mid=65535)
    )
    expected = [
        ("telemetry/s/d1", b'{"a": 1}', 1, 1),
        ("telemetry/s/d2", b"", 2, 1),
        ("telemetry/s/d3", b"42", 0, 0),
        ("telemetry/s/\ufffd", big, 65535, 1),
    ]
    return data, expected


@given(st.lists(st.integers(min_value=1, max_value=len(stream()[0]) - 1), max_size=20))
def test_publishes_are_delivered_whole_and_in_order_however_reads_cut_them(
    cuts: list[int],
) -> None:
    data, expected = stream()
    bounds = [0, *sorted(set(cuts)), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    got: list[tuple[str, bytes, int, int]] = []
    splitter = PublishSplitter(Chunks(chunks), lambda *m: got.append(m))
    for_paho = read_all(splitter, 2 * len(chunks) + 20)
    assert got == expected
    assert for_paho == CONNACK + PINGRESP


def test_end_of_stream_reaches_paho() -> None:
    class Closed:
        def recv(self, size: int) -> bytes:
            return b""

    assert PublishSplitter(Closed(), lambda *m: None).recv(1) == b""


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(publish(b"t", b"p", mid=1, qos=2), id="qos 2 on a qos 1 subscription"),
        pytest.param(publish(b"t", b"p", mid=0), id="qos 1 without a packet id"),
        pytest.param(b"\x32\x03\x00\x09t", id="topic longer than the packet"),
        pytest.param(b"\x32\xff\xff\xff\xff\x01", id="length of 5 bytes"),
    ],
)
def test_a_malformed_publish_drops_the_connection(packet: bytes) -> None:
    splitter = PublishSplitter(Chunks([packet]), lambda *m: None)
    with pytest.raises(ProtocolViolation):
        splitter.recv(1)
    assert isinstance(ProtocolViolation("x"), OSError)  # paho: connection lost


class Cut:
    """A non-blocking socket serving ``data`` cut at the given boundaries, at
    most ``size`` bytes per recv, as a real one would."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = [c for c in chunks if c]

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > size:
            self.chunks.insert(0, chunk[size:])
        return chunk[:size]


def test_a_callback_that_raises_mid_read_ends_the_stream_without_misparsing() -> None:
    packets = [publish(b"t", f"m{i}".encode() * 40, mid=i) for i in range(1, 6)]
    data = b"".join(packets[:3]) + packets[3][:30]
    rest = packets[3][30:] + packets[4] + PINGRESP
    got: list[int] = []
    faults: list[str] = []

    def on_message(topic: str, payload: bytes, mid: int, qos: int) -> None:
        got.append(mid)
        if mid == 2:
            raise ZeroDivisionError("a bug downstream")

    splitter = PublishSplitter(Chunks([data, rest]), on_message, on_fault=faults.append)
    # paho takes an OSError from recv as a lost connection and drops it.
    with pytest.raises(CallbackFailed):
        splitter.recv(1)
    assert isinstance(CallbackFailed("x"), OSError)
    # The stream is over: nothing more is delivered, paho is handed no bytes
    # (no half packet parsed as a new one), and the broker redelivers 2 to 5.
    for _ in range(5):
        with pytest.raises(CallbackFailed):
            splitter.recv(1)
    assert got == [1, 2]
    assert faults == ["callback_error"]


def test_over_receive_maximum_the_rest_waits_for_acks_and_nothing_is_lost() -> None:
    packets = b"".join(publish(b"t", b"p", mid=i) for i in range(1, 8)) + PINGRESP
    sock = Chunks([packets])
    got: list[int] = []
    faults: list[str] = []
    blocked: list[bool] = []
    splitter = PublishSplitter(
        sock,
        lambda *m: got.append(m[2]),
        receive_maximum=3,
        on_fault=faults.append,
        on_blocked=lambda: blocked.append(True),
    )

    def read() -> bytes:
        with contextlib.suppress(BlockingIOError):
            return splitter.recv(100)
        return b""

    assert read() == b""
    assert got == [1, 2, 3]  # never more than Receive Maximum unacked
    assert faults == ["receive_maximum_exceeded"]
    assert blocked == [True]
    assert splitter.blocked
    assert read() == b""  # still full: the rest is held, the socket is not read
    splitter.acked(2)
    assert not splitter.blocked
    assert splitter.pending() > 0  # held bytes to read: the owner reads again
    read()
    assert got == [1, 2, 3, 4, 5]
    splitter.acked(3)
    assert read() == PINGRESP  # paho's packets after the held ones, in order
    assert got == [1, 2, 3, 4, 5, 6, 7]
    assert faults == ["receive_maximum_exceeded"] * 2


# Every packet type a broker may send a client (MQTT v5 2.1.2): CONNACK, PUBLISH,
# PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH.
OTHER_FIRST_BYTES = [0x20, 0x40, 0x50, 0x62, 0x70, 0x90, 0xB0, 0xD0, 0xE0, 0xF0]
# Remaining lengths of 1, 2, 3 and 4 bytes; over 64 KiB (one read) and over 2 MiB.
PAYLOAD_SIZES = [0, 1, 100, 127, 16_383, 16_384, 70_000, 2_097_152]


@st.composite
def mqtt_stream(
    draw: st.DrawFn,
) -> tuple[bytes, list[tuple[str, bytes, int, int]], bytes]:
    data, expected, others = [], [], []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            qos = draw(st.integers(0, 1))
            mid = draw(st.integers(1, 65535)) if qos else 0
            topic = draw(st.text(min_size=1, max_size=30))
            size = draw(st.sampled_from(PAYLOAD_SIZES)) + draw(st.integers(0, 3))
            payload = bytes([draw(st.integers(0, 255))]) * size
            props = draw(st.sampled_from([b"", b"\x01\x01", b"\x26\x00\x01k\x00\x01v"]))
            flags = draw(st.sampled_from([0, 1, 8, 9]))  # retain, dup
            raw = publish(topic.encode(), payload, mid=mid, qos=qos, props=props)
            data.append(bytes([raw[0] | flags]) + raw[1:])
            expected.append((topic, payload, mid, qos))
        else:
            first = draw(st.sampled_from(OTHER_FIRST_BYTES))
            body = draw(st.binary(max_size=300))
            raw = bytes([first]) + varint(len(body)) + body
            data.append(raw)
            others.append(raw)
    return b"".join(data), expected, b"".join(others)


@settings(max_examples=150, deadline=None)
@given(mqtt_stream(), st.data())
def test_every_publish_of_any_valid_stream_comes_out_exactly_once_however_it_is_cut(
    stream: tuple[bytes, list[tuple[str, bytes, int, int]], bytes], data: st.DataObject
) -> None:
    raw, expected, others = stream
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=30))
    bounds = [0, *sorted(set(cuts)), len(raw)]
    reads = data.draw(st.sampled_from([1, 5, 65_536]))  # how much paho asks for at once
    got: list[tuple[str, bytes, int, int]] = []
    sock = Cut([raw[a:b] for a, b in itertools.pairwise(bounds)])
    splitter = PublishSplitter(sock, lambda *m: got.append(m))
    for_paho = bytearray()
    idle = 0
    while idle < 3:  # the socket ran dry three times: everything was read
        try:
            for_paho += splitter.recv(reads)
            idle = 0
        except BlockingIOError:
            idle += 1 if not sock.chunks else 0
    assert got == expected
    assert bytes(for_paho) == others


def test_unread_counts_what_waits_in_the_socket_until_it_is_read() -> None:
    """What tells the worker that the broker sends faster than it takes
    (bridge.pipeline.Worker._behind): bytes the kernel holds, unread."""
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    got: list[tuple[str, bytes, int, int]] = []
    splitter = PublishSplitter(ours, lambda *m: got.append(m))
    try:
        assert splitter.unread() == 0
        packets = [publish(b"t/d", b"x" * 100, mid=i) for i in range(1, 1001)]
        data = b"".join(packets)
        broker.sendall(data)
        assert splitter.unread() == len(data)
        with contextlib.suppress(BlockingIOError):
            splitter.recv(1)
        assert splitter.unread() == len(data) - READ_CHUNK
        while splitter.unread():
            with contextlib.suppress(BlockingIOError):
                splitter.recv(1)
        assert len(got) == 1000
        splitter.close()
        assert splitter.unread() == 0  # closed: nothing to tell, no error
    finally:
        broker.close()
