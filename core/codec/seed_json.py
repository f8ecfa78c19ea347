"""seed_json: the format the first devices speak.

One reading, or a JSON array of readings from the same device::

    {"device_id": "pump-0001", "timestamp": "2026-11-27T10:00:00.123Z",
     "data": {"flow_rate": 1234.5, "pip": 2750.25, "running": true}}

``device_id`` is optional; when present it must be the topic's device.
``timestamp`` is optional (absent or null: the receive time) and applies to
every point of its reading. Other keys are ignored. A reading that is not an
object, or whose ``data`` is not an object, makes the message ``bad_shape``.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from core.rules import (
    FAST_LOADS,
    CodecError,
    DecodeContext,
    Decoded,
    JsonLoads,
    Rejected,
    TimeWindow,
    check_device,
    check_point_count,
    finish,
    kind,
    metric_name,
    new_point,
    parse_json,
    point_time_us,
    point_value,
)
from core.types import Point, Reject, Sample


class SeedJson:
    name = "seed_json"

    def __init__(self, loads: JsonLoads = FAST_LOADS) -> None:
        self._loads = loads

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """One device's samples as a reading per time, the time in integer
        microseconds (exact: decode reads numbers from 1e14 to 1e17 as µs,
        1973 to 5138). A repeated (time, metric) keeps its first value, as
        the database does."""
        by_time: dict[int, dict[str, float]] = {}
        for time_us, metric, value in samples:
            data = by_time.get(time_us)
            if data is None:
                data = by_time[time_us] = {}
            data.setdefault(metric, value)
        return orjson.dumps([{"timestamp": t, "data": d} for t, d in by_time.items()])

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        doc = parse_json(payload, ctx.limits, self._loads)
        readings = _readings(doc, ctx)
        check_point_count(sum(len(data) for _, data in readings), ctx.limits)

        window = TimeWindow.of(ctx)
        max_len = ctx.limits.max_metric_len
        device_id = ctx.device_id
        points: list[Point] = []
        rejects: list[Reject] = []
        for raw_time, data in readings:
            time_error: Reject | None = None
            try:
                time_us = point_time_us(raw_time, window)
            except Rejected as exc:
                time_us, time_error = 0, exc.reject
            for name, raw_value in data.items():
                try:
                    metric = metric_name(name, max_len)
                    value = point_value(raw_value, metric)
                except Rejected as exc:
                    rejects.append(exc.reject)
                    continue
                if time_error is not None:
                    rejects.append(time_error)
                    continue
                points.append(new_point(Point, (time_us, device_id, metric, value)))
        return finish(points, rejects)


def _readings(doc: object, ctx: DecodeContext) -> list[tuple[object, dict[str, object]]]:
    """(timestamp, data) of each reading, once the message's shape and device are checked."""
    if type(doc) is dict:
        return [_reading(doc, ctx, "the message")]
    if type(doc) is list:
        return [_reading(item, ctx, f"reading {index}") for index, item in enumerate(doc)]
    raise CodecError("bad_shape", f"expected an object or an array of objects, got {kind(doc)}")


def _reading(item: object, ctx: DecodeContext, where: str) -> tuple[object, dict[str, object]]:
    if type(item) is not dict:
        raise CodecError("bad_shape", f"{where} is {kind(item)}, not an object")
    if "device_id" in item:
        check_device(item["device_id"], ctx)
    data = item.get("data")
    if type(data) is not dict:
        raise CodecError("bad_shape", f'{where} has no "data" object')
    return item.get("timestamp"), data
