"""Where an edge agent's origin travels, decided by measurement.

Per-message cost in the bridge of (a) a PUBLISH without properties, as every
direct device sends, (b) the same with the ``origin`` user property
(bridge/source/wire.py reads it), and (c) the alternative, a payload field:
flat_json decoding ``{"points": [...]}`` against ``{"origin": ..., "points": [...]}``
(seed_json, a JSON array, has no room for a field at all). Best of several
repetitions, cases taking turns. Prints the figures; writes nothing.

    .venv/bin/python bench/bench_origin.py [--quick]

Run it in two trees (this one and main's) to see what reading the property
costs messages that carry none: (a) must not move.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import orjson

from bridge.source.wire import PublishSplitter
from core.codec import DecodeContext, build_codec
from core.limits import Limits


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, mid: int, props: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big")
    body += varint(len(props)) + props + payload
    return bytes([0x32]) + varint(len(body)) + body


def origin_property(seq: int) -> bytes:
    value = f"site-1 4503599627370495 {seq}".encode()
    return b"\x26\x00\x06origin" + len(value).to_bytes(2, "big") + value


PAYLOAD = orjson.dumps({"timestamp": 1764237600123456, "data": {"flow_rate": 1234.5}})


def split_cost(messages: int, with_origin: bool) -> Callable[[], float]:
    packets = [
        publish(
            b"telemetry/site-1/esp-0001",
            PAYLOAD,
            1 + i % 65_000,
            origin_property(i + 1) if with_origin else b"",
        )
        for i in range(messages)
    ]
    # Whole packets per read, as a busy socket hands them over.
    chunks: list[bytes] = []
    for i in range(0, messages, 500):
        chunks.append(b"".join(packets[i : i + 500]))
    seen = [0]

    def on_message(topic: str, payload: bytes, mid: int, qos: int) -> None:
        seen[0] += 1

    def on_origin(value: str) -> None:
        return None

    def run() -> float:
        splitter = PublishSplitter(None, on_message, receive_maximum=1 << 30, on_origin=on_origin)
        start = time.perf_counter()
        for chunk in chunks:
            splitter._split(chunk)
        return (time.perf_counter() - start) / messages

    return run


def decode_cost(messages: int, with_origin: bool) -> Callable[[], float]:
    codec = build_codec("flat_json", {})
    ctx = DecodeContext("esp-0001", None, 1764237600123456, Limits())
    doc: dict[str, object] = {
        "points": [{"metric": "flow_rate", "value": 1.5, "ts": 1764237600123456}]
    }
    if with_origin:
        doc = {"origin": "site-1 4503599627370495 123456", **doc}
    payload = orjson.dumps(doc)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(messages):
            codec.decode(payload, ctx)
        return (time.perf_counter() - start) / messages

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    messages, rounds = (20_000, 3) if args.quick else (200_000, 7)
    cases = {
        "publish, no properties": split_cost(messages, False),
        "publish, origin property": split_cost(messages, True),
        "flat_json decode, 1 point": decode_cost(messages // 4, False),
        "flat_json decode, 1 point + origin field": decode_cost(messages // 4, True),
    }
    best = dict.fromkeys(cases, float("inf"))
    gc.disable()
    for _ in range(rounds):
        for name, run in cases.items():
            best[name] = min(best[name], run())
    gc.enable()
    for name, seconds in best.items():
        print(f"{name:45s} {seconds * 1e9:8.0f} ns/message")


if __name__ == "__main__":
    main()
