"""flat_json: one point per JSON object.

Any of::

    {"metric": "flow_rate", "value": 1234.5, "ts": 1795773600123}
    [{"metric": "flow_rate", "value": 1234.5}, {"metric": "pip", "value": 2750.25}]
    {"device_id": "pump-0001", "points": [{"metric": "flow_rate", "value": 1234.5}]}

``ts`` (or ``time``, or ``timestamp``) is optional: absent or null means the
receive time. ``metric`` may be left out when the topic names the metric
(a ``{metric}`` level); a point that names one uses its own. A ``device_id``,
on the envelope or on a point, must be the topic's device. Other keys are
ignored. A point that is not an object makes the message ``bad_shape``.
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


class FlatJson:
    name = "flat_json"

    def __init__(self, loads: JsonLoads = FAST_LOADS) -> None:
        self._loads = loads

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """One device's samples as ``{"points": [...]}``, times in integer µs."""
        return orjson.dumps({"points": [{"metric": m, "value": v, "ts": t} for t, m, v in samples]})

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        doc = parse_json(payload, ctx.limits, self._loads)
        items = _items(doc, ctx)
        check_point_count(len(items), ctx.limits)

        window = TimeWindow.of(ctx)
        max_len = ctx.limits.max_metric_len
        device_id = ctx.device_id
        points: list[Point] = []
        rejects: list[Reject] = []
        for index, item in enumerate(items):
            if type(item) is not dict:
                raise CodecError("bad_shape", f"point {index} is {kind(item)}, not an object")
            if "device_id" in item:
                check_device(item["device_id"], ctx)
            try:
                points.append(_point(item, ctx.metric, device_id, max_len, window))
            except Rejected as exc:
                rejects.append(exc.reject)
        return finish(points, rejects)


def _items(doc: object, ctx: DecodeContext) -> list[object]:
    if type(doc) is list:
        return doc
    if type(doc) is dict:
        if "points" not in doc:
            return [doc]
        if "device_id" in doc:
            check_device(doc["device_id"], ctx)
        items = doc["points"]
        if type(items) is list:
            return items
        raise CodecError("bad_shape", f'"points" is {kind(items)}, not an array')
    raise CodecError("bad_shape", f"expected an object or an array, got {kind(doc)}")


def _point(
    item: dict[str, object],
    topic_metric: str | None,
    device_id: str,
    max_len: int,
    window: TimeWindow,
) -> Point:
    """The point an object describes; raises Rejected when it cannot be stored."""
    raw_metric = item.get("metric", topic_metric)
    if raw_metric is None:
        raise Rejected("bad_metric_name", "the point has no metric and the topic names none")
    metric = metric_name(raw_metric, max_len)
    if "value" not in item:
        raise Rejected("bad_value", f"{metric}: the point has no value")
    value = point_value(item["value"], metric)
    time_us = point_time_us(_raw_time(item), window)
    return new_point(Point, (time_us, device_id, metric, value))


def _raw_time(item: dict[str, object]) -> object:
    raw = item.get("ts")
    if raw is None:
        raw = item.get("time")
        if raw is None:
            raw = item.get("timestamp")
    return raw
