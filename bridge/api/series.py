"""A device's series over a time range, from two sources joined at one seam.

The cache (Redis) holds every committed point from ``cut`` on, where ``cut``
is the later of the start of its recent window (less a margin for the
writers' clocks) and ``complete_since``, the time from which its writers
vouch that nothing is missing. Points before ``cut`` come from PostgreSQL,
points from ``cut`` on from Redis: each point has exactly one source, so
the joined series has no gap and no duplicate. With rollups the seam moves
up to the next bucket boundary, so each bucket is whole from one source.
When Redis cannot answer, everything comes from the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from bridge.api import store
from bridge.api.problems import ApiError
from bridge.api.store import WIDTH_US, Mode, Resolution, Selection, SeriesBucket
from bridge.cache.reader import CacheReader
from bridge.errors import RedisUnavailable

Step = Literal["auto", "raw", "1m", "1h"]
CLOCK_MARGIN_US = 10_000_000  # writers' clocks may run this far ahead of ours
RAW_PROBE_SPAN_US = 6 * 3_600_000_000  # auto tries raw rows up to this span
CacheState = Literal["hit", "miss", "bypass", "unavailable"]


class TooManyPoints(ApiError):
    """An explicit step=raw over more rows than a response may carry."""


@dataclass(slots=True)
class SeriesResult:
    resolution: Resolution
    raw: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    buckets: dict[str, list[SeriesBucket]] = field(default_factory=dict)
    cache: CacheState = "bypass"  # hit: part came from Redis; miss: none did


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    device_id: str
    metrics: list[str] | None
    start_us: int
    end_us: int  # exclusive
    step: Step


class SeriesReader:
    def __init__(
        self, mode: Mode, cache: CacheReader | None, series_points: int, window_s: int
    ) -> None:
        self._mode = mode
        self._cache = cache
        self._points = series_points
        self._window_us = window_s * 1_000_000

    async def read(self, conn: asyncpg.Connection, q: SeriesQuery, now_us: int) -> SeriesResult:
        cut, state = await self._cut(now_us)
        try:
            return await self._read(conn, q, cut, state)
        except RedisUnavailable:  # it went away mid-request: all from the database
            return await self._read(conn, q, None, "unavailable")

    async def _read(
        self, conn: asyncpg.Connection, q: SeriesQuery, cut: int | None, state: CacheState
    ) -> SeriesResult:
        span = q.end_us - q.start_us
        if q.step == "raw" or (q.step == "auto" and span <= RAW_PROBE_SPAN_US):
            explicit = q.step == "raw"
            result = await self._raw(
                conn, q, cut, state, limit=self._points * (5 if explicit else 1), guess=not explicit
            )
            if result is not None:
                return result
            if explicit:
                raise TooManyPoints(
                    f"more than {self._points * 5} points in a series; ask for step=1m or "
                    "step=1h, or a shorter range"
                )
        resolution: Literal["1m", "1h"]
        if q.step in ("1m", "1h"):
            resolution = q.step
        else:
            resolution = "1m" if span <= self._points * WIDTH_US["1m"] else "1h"
        return await self._rollup(conn, q, resolution, cut, state)

    async def _cut(self, now_us: int) -> tuple[int | None, CacheState]:
        """Where the cache takes over, or None when it cannot serve."""
        if self._cache is None:
            return None, "bypass"
        try:
            since = await self._cache.complete_since()
        except RedisUnavailable:
            return None, "unavailable"
        if since is None:
            return None, "miss"
        return max(now_us - self._window_us + CLOCK_MARGIN_US, since), "miss"

    async def _raw(
        self,
        conn: asyncpg.Connection,
        q: SeriesQuery,
        cut: int | None,
        state: CacheState,
        *,
        limit: int,
        guess: bool,
    ) -> SeriesResult | None:
        """The raw series, or None when some series holds more than ``limit``
        points. The recent part (Redis) is read first: with ``guess``, a series
        whose recent part (at least an eighth of the range), at the same rate
        over the whole range, would hold more than ``limit`` points gives None
        without reading the database (a 1 Hz device's last hour: 3,600 points
        a series, no need to fetch them to learn that)."""
        db_end = q.end_us if cut is None else max(q.start_us, min(q.end_us, cut))
        out = SeriesResult("raw", cache=state)
        metrics = q.metrics
        recent: dict[str, list[tuple[int, float]]] = {}
        if cut is not None and db_end < q.end_us:
            recent = await self._recent(q, metrics, db_end, q.end_us, out)
            span, covered = q.end_us - q.start_us, q.end_us - db_end
            # A guess from a short stretch (a burst, a cache that vouches only
            # since a moment ago) is no guess: then only the exact count decides.
            scale = span if guess and covered * 8 >= span else covered
            if any(len(p) * scale > limit * covered for p in recent.values()):
                return None
        if db_end > q.start_us:
            cap = limit * (len(metrics) if metrics else 16) + 1
            rows = await store.raw(conn, Selection([q.device_id], metrics, q.start_us, db_end), cap)
            if sum(map(len, rows.values())) >= cap:
                return None
            out.raw = {metric: points for (_, metric), points in rows.items()}
        for metric, points in recent.items():
            out.raw.setdefault(metric, []).extend(points)
        if any(len(points) > limit for points in out.raw.values()):
            return None
        return out

    async def _recent(
        self,
        q: SeriesQuery,
        metrics: list[str] | None,
        start_us: int,
        end_us: int,
        out: SeriesResult,
    ) -> dict[str, list[tuple[int, float]]]:
        """Points in [start_us, end_us) from Redis, by metric. Raises
        RedisUnavailable; the caller then reads it all from the database."""
        assert self._cache is not None
        names = metrics if metrics is not None else sorted(await self._cache.latest(q.device_id))
        # The metrics' ranges are read concurrently: one round trip's wait, not one per metric.
        replies = await asyncio.gather(
            *(self._cache.recent(q.device_id, m, start_us, end_us - 1) for m in names)
        )
        got: dict[str, list[tuple[int, float]]] = {}
        for metric, pairs in zip(names, replies, strict=True):
            if pairs:
                got[metric] = [(t, float(v)) for t, v in pairs]
        out.cache = "hit"
        return got

    async def _rollup(
        self,
        conn: asyncpg.Connection,
        q: SeriesQuery,
        resolution: Literal["1m", "1h"],
        cut: int | None,
        state: CacheState,
    ) -> SeriesResult:
        width = WIDTH_US[resolution]
        first = q.start_us // width * width
        last = -(-q.end_us // width) * width  # end of the bucket holding end_us
        seam = last if cut is None else max(first, min(last, -(-cut // width) * width))
        out = SeriesResult(resolution, cache=state)
        if seam > first:
            out.buckets = await store.rollup_series(
                conn, self._mode, resolution, Selection([q.device_id], q.metrics, first, seam)
            )
        if seam < last:
            recent = await self._recent(q, q.metrics, seam, last, out)
            for metric, points in recent.items():
                out.buckets.setdefault(metric, []).extend(bucketize(points, width))
        return out


def bucketize(points: list[tuple[int, float]], width: int) -> list[SeriesBucket]:
    """Ascending (time_us, value) pairs into buckets of ``width`` µs, as the
    database computes them."""
    out: list[SeriesBucket] = []
    start: int | None = None
    values: list[float] = []
    for time_us, value in points:
        bucket = time_us // width * width
        if bucket != start:
            if start is not None:
                out.append(_bucket(start, values))
            start, values = bucket, []
        values.append(value)
    if start is not None:
        out.append(_bucket(start, values))
    return out


def _bucket(start: int, values: list[float]) -> SeriesBucket:
    return (start, sum(values) / len(values), min(values), max(values), len(values))
