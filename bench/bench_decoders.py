"""Which JSON decoder the codecs use, decided by measurement.

Measures the whole decode path of the seed_json codec (parse, shape and
device checks, per-point rules, Point construction) with each decoder, for
(a) one reading with an RFC 3339 timestamp and (b) a list of 100 readings with
epoch-millisecond timestamps. Best of several repetitions, the decoders taking
turns so that a noisy neighbour slows them alike. Prints the machine and the
figures, and writes them to bench/results/decoders.json.

    .venv/bin/python bench/bench_decoders.py [--quick]

Decoders: the standard library's json, orjson, msgspec (untyped, like the
other two), and msgspec with typed Structs, where the decoder itself checks the
shape and that every value is a number (anything it refuses goes through the
generic codec, so the outcome is the same).

The mapping codec (core.codec.mapping) takes its turn in the same rounds, on
the same readings in the shapes it is for: a flat object with its time
(``{"timestamp": ..., "flow_rate": ...}``, every leaf) and a list of 100 such
objects (``items``). Its cost per point is reported against seed_json's with
the decoder the codecs use; issue 20 asks for at most 1.5x.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson

from core.codec import CodecError, DecodeContext, Decoded, build_codec
from core.codec.seed_json import SeedJson
from core.limits import Limits
from core.rules import (
    FAST_LOADS,
    Rejected,
    TimeWindow,
    check_device,
    check_point_count,
    check_size,
    finish,
    metric_name,
    new_point,
    point_time_us,
)
from core.types import Point, Reject

RESULTS = Path(__file__).resolve().parent / "results" / "decoders.json"

SINGLE = (
    b'{"device_id":"pump-0001","timestamp":"2026-11-27T10:00:00.123Z",'
    b'"data":{"flow_rate":1234.5,"pip":2750.25,"temperature":70.2}}'
)
T0_MS = 1_795_773_600_123  # 2026-11-27T10:00:00.123Z
BATCH = orjson.dumps(
    [
        {
            "device_id": "pump-0001",
            "timestamp": T0_MS + i * 1_000,
            "data": {"flow_rate": 1234.5 + i, "pip": 2750.25 - i, "temperature": 70.2},
        }
        for i in range(100)
    ]
)
CTX = DecodeContext("pump-0001", None, T0_MS * 1_000 + 120_000_000, Limits())

# The same readings as the mapping codec reads them, and its options.
MAPPING_SINGLE = (
    b'{"timestamp":"2026-11-27T10:00:00.123Z","flow_rate":1234.5,"pip":2750.25,"temperature":70.2}'
)
MAPPING_BATCH = orjson.dumps(
    [
        {"timestamp": T0_MS + i * 1_000, "flow_rate": 1234.5 + i, "pip": 2750.25 - i,
         "temperature": 70.2}
        for i in range(100)
    ]
)  # fmt: skip
MAPPING = {
    "single": (MAPPING_SINGLE, {"time_path": "timestamp"}),
    "batch_100": (MAPPING_BATCH, {"items": {"path": "@", "time": "timestamp"}}),
}
MAPPING_MAX_RATIO = 1.5  # issue 20: per point, at most 1.5x seed_json


class Reading(msgspec.Struct):
    data: dict[str, float]
    device_id: str | msgspec.UnsetType = msgspec.UNSET  # null is a mismatch, not absent
    timestamp: str | int | float | None = None


class SeedJsonTyped:
    """seed_json on msgspec Structs. The typed decoder refuses booleans,
    nulls, strings and wrong shapes; those messages take the generic path."""

    name = "seed_json"

    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(Reading | list[Reading])
        self._generic = SeedJson(msgspec.json.Decoder().decode)

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        check_size(payload, ctx.limits)
        try:
            doc = self._decoder.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            return self._generic.decode(payload, ctx)
        readings = doc if isinstance(doc, list) else [doc]
        for reading in readings:
            if reading.device_id is not msgspec.UNSET:
                check_device(reading.device_id, ctx)
        check_point_count(sum(len(r.data) for r in readings), ctx.limits)
        window = TimeWindow.of(ctx)
        max_len = ctx.limits.max_metric_len
        device_id = ctx.device_id
        points: list[Point] = []
        rejects: list[Reject] = []
        for reading in readings:
            time_error: Reject | None = None
            try:
                time_us = point_time_us(reading.timestamp, window)
            except Rejected as exc:
                time_us, time_error = 0, exc.reject
            for name, value in reading.data.items():  # finite floats: msgspec refuses 1e999
                try:
                    metric = metric_name(name, max_len)
                except Rejected as exc:
                    rejects.append(exc.reject)
                    continue
                if time_error is not None:
                    rejects.append(time_error)
                    continue
                points.append(new_point(Point, (time_us, device_id, metric, value)))
        return finish(points, rejects)


# Not timed: payloads on which the variants must agree with the generic codec.
EDGE_CASES = [
    b'{"device_id": null, "data": {"a": 1}}',
    b'{"device_id": "pump-0002", "data": {"a": 1}}',
    b'{"data": {"a": true, "b": 2, "c": "x", "d": null, "e": 1e999}}',
    b'{"timestamp": true, "data": {"a": 1}}',
    b'{"timestamp": "2026-11-27T10:00:00.123Z", "data": {"bad name": 1, "b": 2}}',
    b'[{"data": {"a": 1}}, {"data": 5}]',
    b'{"data": {}}',
    b"[1, 2",
]


@dataclass
class Variant:
    name: str
    decode: Callable[[bytes, DecodeContext], Decoded]
    parse: Callable[[bytes], object]


def variants() -> list[Variant]:
    msgspec_untyped = msgspec.json.Decoder()
    msgspec_typed = msgspec.json.Decoder(Reading | list[Reading])
    return [
        Variant("json", SeedJson(json.loads).decode, json.loads),
        Variant("orjson", SeedJson(orjson.loads).decode, orjson.loads),
        Variant("msgspec", SeedJson(msgspec_untyped.decode).decode, msgspec_untyped.decode),
        Variant("msgspec_typed", SeedJsonTyped().decode, msgspec_typed.decode),
    ]


def calibrate(func: Callable[[], object], target_s: float) -> int:
    """How many calls take about target_s."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 10:
            return max(1, int(number * target_s / elapsed))
        number *= 4


def best_times(
    funcs: dict[str, Callable[[], object]], repeat: int, target_s: float
) -> dict[str, float]:
    """Best seconds per call of each function; they take turns, repeat rounds."""
    numbers = {name: calibrate(func, target_s) for name, func in funcs.items()}
    best = dict.fromkeys(funcs, float("inf"))
    gc.disable()
    try:
        for _ in range(repeat):
            for name, func in funcs.items():
                number = numbers[name]
                start = time.perf_counter()
                for _ in range(number):
                    func()
                best[name] = min(best[name], (time.perf_counter() - start) / number)
    finally:
        gc.enable()
    return best


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model or platform.processor(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "orjson": orjson.__version__,
        "msgspec": msgspec.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    args = parser.parse_args()
    repeat, target_s = (3, 0.01) if args.quick else (40, 0.02)

    info = machine()
    shared = f"{info['nproc']} cores shared by every component"
    print(
        f"machine: {info['nproc']} cores ({info['cpu']}), {info['implementation']} "
        f"{info['python']}, orjson {info['orjson']}, msgspec {info['msgspec']}"
    )
    print(f"absolute figures below: {shared} (broker, database, Redis, workers, this bench)")

    cases = {"single": (SINGLE, 3), "batch_100": (BATCH, 300)}
    all_variants = variants()
    for case, (payload, n_points) in cases.items():
        decoded = all_variants[0].decode(payload, CTX)
        assert len(decoded.points) == n_points, case
        assert not decoded.rejects, (case, decoded.rejects)
    for payload in [SINGLE, BATCH, *EDGE_CASES]:  # every decoder must give the same answer
        outcomes = {v.name: _outcome(v, payload) for v in all_variants}
        assert len(set(map(repr, outcomes.values()))) == 1, (payload, outcomes)

    mapping_codecs = {case: build_codec("mapping", opts) for case, (_, opts) in MAPPING.items()}
    for case, (payload, _) in cases.items():  # the same points, seed_json's and mapping's
        mapped = mapping_codecs[case].decode(MAPPING[case][0], CTX)
        assert mapped.points == all_variants[0].decode(payload, CTX).points, case
        assert not mapped.rejects, case

    results: dict[str, object] = {}
    us: dict[str, dict[str, float]] = {}  # case -> decoder -> µs per message
    for case, (payload, n_points) in cases.items():
        mapping_codec, mapping_payload = mapping_codecs[case], MAPPING[case][0]
        full = best_times(
            {v.name: (lambda v=v, p=payload: v.decode(p, CTX)) for v in all_variants}
            | {"mapping": lambda c=mapping_codec, p=mapping_payload: c.decode(p, CTX)},
            repeat,
            target_s,
        )
        parse = best_times(
            {v.name: (lambda v=v, p=payload: v.parse(p)) for v in all_variants}
            | {"mapping": lambda p=mapping_payload: FAST_LOADS(p)},
            repeat,
            target_s,
        )
        us[case] = {name: seconds * 1e6 for name, seconds in full.items()}
        rows = {}
        print(f"\n{case}: {len(payload)} bytes, {n_points} points  [{shared}]")
        print(
            f"  {'decoder':<14}{'µs/message':>12}{'ns/point':>10}{'parse µs':>10}"
            f"{'vs json':>9}{'messages/s':>12}"
        )
        for name, seconds in sorted(full.items(), key=lambda item: item[1]):
            ratio = full["json"] / seconds
            rows[name] = {
                "us_per_message": round(seconds * 1e6, 3),
                "ns_per_point": round(seconds * 1e9 / n_points, 1),
                "parse_only_us": round(parse[name] * 1e6, 3),
                "speedup_vs_json": round(ratio, 2),
                "messages_per_s": round(1 / seconds),
            }
            print(
                f"  {name:<14}{seconds * 1e6:>12.2f}{seconds * 1e9 / n_points:>10.0f}"
                f"{parse[name] * 1e6:>10.2f}{ratio:>8.2f}x{1 / seconds:>12,.0f}"
            )
        results[case] = {"payload_bytes": len(payload), "points": n_points, "decoders": rows}

    # The winner among the decoders the codecs can take as `loads`, by the
    # geometric mean of its full-path time over both cases.
    score = {
        name: (us["single"][name] * us["batch_100"][name]) ** 0.5
        for name in ("json", "orjson", "msgspec")
    }
    ranked = sorted(score, key=score.__getitem__)
    winner, runner_up = ranked[0], ranked[1]
    typed_gain = (
        score[winner] / (us["single"]["msgspec_typed"] * us["batch_100"]["msgspec_typed"]) ** 0.5
    )
    margin = score[runner_up] / score[winner]
    in_use = _decoder_name(FAST_LOADS)
    print(
        f"\nwinner: {winner}, {score['json'] / score[winner]:.2f}x json and "
        f"{margin:.2f}x {runner_up} (geometric mean of both cases)"
        + (" - close: rerun before changing decoder" if margin < 1.05 else "")
    )
    print(
        f"msgspec typed Structs (a second, typed code path): {typed_gain:.2f}x {winner}. "
        f"The codecs use {in_use}."
    )
    mapping_ratio = {case: us[case]["mapping"] / us[case][in_use] for case in cases}
    worst = max(mapping_ratio.values())
    print(
        "mapping codec per point vs seed_json ("
        + ", ".join(f"{case} {ratio:.2f}x" for case, ratio in mapping_ratio.items())
        + f"): {'within' if worst <= MAPPING_MAX_RATIO else 'BEYOND'} {MAPPING_MAX_RATIO}x"
    )
    out = {
        "what": "seed_json full decode path (parse + validation + Point construction) per "
        "decoder, and the mapping codec on the same readings, best of repetitions, taking turns",
        "note": f"absolute figures: {shared}",
        "machine": info,
        "repeat": repeat,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": results,
        "winner": winner,
        "winner_speedup_vs_json": round(score["json"] / score[winner], 2),
        "winner_speedup_vs_runner_up": round(score[runner_up] / score[winner], 2),
        "runner_up": runner_up,
        "msgspec_typed_speedup_vs_winner": round(typed_gain, 2),
        "codecs_use": in_use,
        "mapping_vs_seed_json_per_point": {c: round(r, 2) for c, r in mapping_ratio.items()},
        "mapping_max_ratio": MAPPING_MAX_RATIO,
        "mapping_within_max_ratio": worst <= MAPPING_MAX_RATIO,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(f"wrote {RESULTS}")


def _outcome(variant: Variant, payload: bytes) -> object:
    try:
        return variant.decode(payload, CTX)
    except CodecError as error:
        return (error.reason, error.detail)


def _decoder_name(loads: Callable[[bytes], object]) -> str:
    if loads is orjson.loads:
        return "orjson"
    if loads is json.loads:
        return "json"
    return "msgspec" if "msgspec" in repr(loads) else repr(loads)


if __name__ == "__main__":
    main()
