"""Sparkplug B decoders compared: which protobuf route core.sparkplug takes.

One NDATA of 100 Double metrics by alias, each with its own timestamp (what
an edge node sends every cycle), decoded to (alias, timestamp, datatype,
value) per metric by:

  generated   the classes protoc generates from sparkplug_b.proto, on the
              `protobuf` package's upb runtime (what core.sparkplug.payload uses)
  hand        a hand-written wire-format decoder of just those fields (a
              lower bound of what a complete one would cost)
  pysparkplug the pysparkplug package's NData.decode, when installed
              (`pip install --no-deps pysparkplug`: it pins paho-mqtt<2)

Best of 7 rounds of 2,000 decodes each; µs per message and per metric.

    .venv/bin/python bench/bench_sparkplug.py [--json results/sparkplug.json]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.sparkplug import sparkplug_b_pb2 as pb

METRICS = 100


def payload() -> bytes:
    msg = pb.Payload(timestamp=1_800_000_000_000, seq=5)
    for i in range(METRICS):
        msg.metrics.add(alias=i, timestamp=1_800_000_000_000 + i, datatype=10, double_value=i * 1.5)
    return msg.SerializeToString()


def generated(data: bytes) -> list[tuple[int, int, int, object]]:
    msg = pb.Payload.FromString(data)
    out = []
    for m in msg.metrics:
        kind = m.WhichOneof("value")
        out.append((m.alias, m.timestamp, m.datatype, getattr(m, kind) if kind else None))
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def hand(data: bytes) -> list[tuple[int, int, int, object]]:
    out = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag != 0x12:  # not a metric: a varint field (timestamp, seq)
            _, i = _varint(data, i)
            continue
        length, i = _varint(data, i)
        end = i + length
        alias = stamp = datatype = 0
        value: object = None
        while i < end:
            field = data[i]
            i += 1
            if field == 0x69:  # double_value
                value = struct.unpack_from("<d", data, i)[0]
                i += 8
                continue
            v, i = _varint(data, i)
            if field == 0x10:
                alias = v
            elif field == 0x18:
                stamp = v
            elif field == 0x20:
                datatype = v
        out.append((alias, stamp, datatype, value))
    return out


def candidates() -> dict[str, Callable[[bytes], list[tuple[int, int, int, object]]]]:
    found: dict[str, Callable[[bytes], list[tuple[int, int, int, object]]]] = {
        "generated": generated,
        "hand": hand,
    }
    try:
        import pysparkplug  # type: ignore[import-not-found]
    except ImportError:
        return found

    def pys(data: bytes) -> list[tuple[int, int, int, object]]:
        return [
            (m.alias, m.timestamp, int(m.datatype), m.value)
            for m in pysparkplug.NData.decode(data).metrics
        ]

    found["pysparkplug"] = pys
    return found


def measure(decode: Callable[[bytes], object], data: bytes, n: int = 2000) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            decode(data)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    data = payload()
    expected = generated(data)
    results: dict[str, Any] = {"payload_bytes": len(data), "metrics": METRICS, "decoders": {}}
    for name, decode in candidates().items():
        assert decode(data) == expected, f"{name} decodes something else"
        seconds = measure(decode, data)
        results["decoders"][name] = {
            "us_per_message": round(seconds * 1e6, 1),
            "us_per_metric": round(seconds * 1e6 / METRICS, 2),
        }
        print(f"{name:12} {seconds * 1e6:8.1f} µs/message {seconds * 1e6 / METRICS:6.2f} µs/metric")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
