"""The MQTT read path: PUBLISH packets out of the byte stream, whatever the
reads cut them into; everything else left whole for paho."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.source.wire import ProtocolViolation, PublishSplitter

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
