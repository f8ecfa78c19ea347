"""An edge agent's origin (a user property) out of a PUBLISH, and nothing
else of its properties; a message without properties is untouched."""

from __future__ import annotations

from bridge.source.wire import PublishSplitter
from tests.source.test_wire import Chunks, publish, read_all


def user_property(key: bytes, value: bytes) -> bytes:
    return b"\x26" + len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


def deliver(data: bytes) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    splitter = PublishSplitter(
        Chunks([data]),
        lambda topic, payload, mid, qos: seen.append(("message", (topic, payload, mid))),
        on_origin=lambda value: seen.append(("origin", value)),
    )
    read_all(splitter, 3)
    return seen


def test_the_origin_goes_just_before_its_message() -> None:
    origin = user_property(b"origin", b"site-1 77 5")
    props = b"\x01\x01" + user_property(b"k", b"v") + b"\x02\x00\x00\x00\x10" + origin
    seen = deliver(
        publish(b"telemetry/s/a", b"one", mid=1)
        + publish(b"telemetry/s/b", b"two", mid=2, props=props)
        + publish(b"telemetry/s/c", b"three", mid=3, props=user_property(b"k", b"v"))
    )
    assert seen == [
        ("message", ("telemetry/s/a", b"one", 1)),
        ("origin", "site-1 77 5"),
        ("message", ("telemetry/s/b", b"two", 2)),
        ("message", ("telemetry/s/c", b"three", 3)),
    ]


def test_properties_that_do_not_parse_cost_the_origin_only() -> None:
    unknown = b"\x7f\x00" + user_property(b"origin", b"site-1 77 5")
    cut = b"\x26\x00\x06origin\x00\x30site"  # the value's length runs past the block
    seen = deliver(
        publish(b"telemetry/s/a", b"one", mid=1, props=unknown)
        + publish(b"telemetry/s/b", b"two", mid=2, props=cut)
        + publish(b"telemetry/s/c", b"three", mid=3, props=b"\x26\x00\x06origin\x00\x02\xff\xfe")
    )
    assert seen == [
        ("message", ("telemetry/s/a", b"one", 1)),
        ("message", ("telemetry/s/b", b"two", 2)),
        ("message", ("telemetry/s/c", b"three", 3)),
    ]
