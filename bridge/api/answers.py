"""The answers' bodies, as the plain dicts bridge.api.schemas describes.

Times go out as RFC 3339 in UTC with microseconds
(2026-11-27T10:00:00.123456Z), whatever form they came in. A series answer
writes thousands of them, so their formatting is cached where measurement
showed it mattered (bench/bench_api.py), and long lists are built a slice
at a time, yielding to the event loop in between (bridge.api.store.slices).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import orjson

from bridge.api import store
from bridge.api.series import SeriesResult
from bridge.api.store import slices, to_us
from bridge.api.summary import Summary

Json = dict[str, Any]


def iso(time_us: int) -> str:
    """RFC 3339 in UTC with microseconds: 2026-11-27T10:00:00.123456Z.

    A series answer formats thousands of these, so the date and time down to
    the minute come from a cache (the same strftime as before, once per
    minute); formatting each one in full was a third of a 1-day query's CPU
    (bench/bench_api.py)."""
    minute, rest = divmod(time_us, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    return f"{_minute(minute)}{seconds:02d}.{micros:06d}Z"


@functools.lru_cache(maxsize=8192)
def _minute(minute: int) -> str:
    """'2026-11-27T10:00:' for minutes since the epoch."""
    return store.to_dt(minute * 60_000_000).strftime("%Y-%m-%dT%H:%M:")


_BUCKET_TIMES: dict[int, str] = {}


def iso_bucket(time_us: int) -> str:
    """iso() of a bucket start. Every device's answer over the same range has
    the same bucket starts, so their texts are kept (a bounded dict lookup is
    a fifth of iso()'s cost)."""
    text = _BUCKET_TIMES.get(time_us)
    if text is None:
        if len(_BUCKET_TIMES) >= 50_000:
            _BUCKET_TIMES.clear()
        text = _BUCKET_TIMES[time_us] = iso(time_us)
    return text


def _iso_dt(moment: dt.datetime | None) -> str | None:
    return None if moment is None else iso(to_us(moment))


def device(d: store.Device, online_after_s: float) -> Json:
    """A registry row; online when its last point is at most ``online_after_s``
    old, or, for a Sparkplug device, as its last BIRTH or DEATH says."""
    fresh = (
        d.last_seen is not None
        and (dt.datetime.now(dt.UTC) - d.last_seen).total_seconds() <= online_after_s
    )
    if d.lifecycle is not None:
        fresh = d.lifecycle == "online"
    return {
        "device_id": d.device_id,
        "site_id": d.site_id,
        "device_type": d.device_type,
        "status": "online" if fresh else "offline",
        "first_seen": _iso_dt(d.first_seen),
        "last_seen": _iso_dt(d.last_seen),
        "metadata": orjson.loads(d.metadata),
    }


def latest(values: dict[str, tuple[int, float]]) -> Json:
    """metric -> its newest point, metrics in name order."""
    return {m: {"time": iso(t), "value": v} for m, (t, v) in sorted(values.items())}


def latest_text(values: dict[str, tuple[int, str]]) -> Json:
    """metric -> its newest string value, metrics in name order."""
    return {m: {"time": iso(t), "text": x} for m, (t, x) in sorted(values.items())}


async def telemetry(device_id: str, start_us: int, end_us: int, result: SeriesResult) -> Json:
    series: list[Json] = []
    for metric in sorted(set(result.raw) | set(result.buckets)):
        points: list[Json] = []
        if result.resolution == "raw":
            async for part in slices(result.raw[metric]):
                points += [{"time": iso(t), "value": v} for t, v in part]
        else:
            async for buckets in slices(result.buckets[metric]):
                points += [
                    {"time": iso_bucket(t), "value": avg, "min": lo, "max": hi, "count": n}
                    for t, avg, lo, hi, n in buckets
                ]
        series.append({"metric": metric, "points": points})
    return {
        "device_id": device_id,
        "start": iso(start_us),
        "end": iso(end_us),
        "resolution": result.resolution,
        "series": series,
    }


async def texts(
    device_id: str, start_us: int, end_us: int, found: dict[str, list[tuple[int, str]]], more: bool
) -> Json:
    series: list[Json] = []
    for metric in sorted(found):
        points: list[Json] = []
        async for part in slices(found[metric]):
            points += [{"time": iso(t), "text": x} for t, x in part]
        series.append({"metric": metric, "points": points})
    return {
        "device_id": device_id,
        "start": iso(start_us),
        "end": iso(end_us),
        "series": series,
        "truncated": more,
    }


def summary(start_us: int, end_us: int, found: dict[tuple[str, str], Summary]) -> Json:
    return {
        "start": iso(start_us),
        "end": iso(end_us),
        "series": [
            {
                "device_id": dev,
                "metric": metric,
                "count": s.count,
                "min": s.min,
                "max": s.max,
                "avg": s.avg,
                "last": s.last,
            }
            for (dev, metric), s in sorted(found.items())
        ],
    }
