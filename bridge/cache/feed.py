"""Committed batches to the Redis cache, in the background: best effort and
bounded, never in the way of the commit that came before.

A batch that finds ``max_pending`` batches, or ``max_points`` points,
already waiting is skipped, and the writer moves complete_since past it
(``CacheWriter.note_lost``), so readers take those times from the database.
Batches that queued up behind a slow write go out together, in one call: one
EVALSHA costs little per point, so catching up beats skipping.

While ``backlog()`` says data waits for the worker (batches waiting for the
database, more than half of the broker's window of unacked messages inside
it, or more than a read's worth unread in its socket: a backlog draining, or
a database, machine or worker loop that is the bottleneck; Worker._behind),
writes start at most once per ``interval_s``
and the batches of one interval go out together; otherwise
each batch goes out as soon as it comes. The script's cost is mostly per
series and call (trim, TTL, the device's latest hash), not per point, so a
call that carries several points of each series costs Redis less per point
and leaves the cores to the database (bench/README.md, "the drain levers").
Live traffic that the database keeps up with pays no delay; under a backlog
a point reaches the cache at most ``interval_s`` later than otherwise.

Under a steady backlog (found by at least ``steady`` of the recent looks at
it, weighted to the latest) the writes also keep to a share of the time
(``backlog_share``): after a write that took ``d`` seconds the next starts
``d / backlog_share`` after it at the earliest. A write's cost grows with the
number of distinct series it carries, not with its points, so a fleet of
many devices (each seen once per write, nothing to merge) would otherwise
have Redis take a core's third from the database (bench/README.md, the
cardinality sweep); what comes meanwhile is merged into the next write, or
skipped when the queue is full, and complete_since moves past it. A backlog
that comes and goes, as at half load when a commit is slow now and then,
does not count: spacing those writes doubled p99 publish-to-Redis there.

With ``window_in_backlog`` off, a write made under a backlog carries only the
latest value of each series (and its device): the recent window, three
commands per series and call, is most of the script's cost, and during a
drain, or when the machine is saturated, it competes with the database for
the same cores. complete_since moves past the points left out, so readers
take those times from the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bridge.cache.writer import CacheWriter
from bridge.errors import RedisUnavailable
from core.types import Point

MERGE_UP_TO = 20_000  # points per catch-up call that writes the window
# Points waiting, at most (some 100 bytes each). Batches merged from many
# small messages hold 3,000-4,000 points each, and 64 of those held 110,000
# points (some 11 MB) in a bridge whose Redis fell behind at 10,000 devices;
# under a backlog the writes keep to their share of the time and the queue
# fills up to this bound at any fleet size (bench/README.md, the cardinality
# sweep): about a second of a drain's points.
MAX_PENDING_POINTS = 32_768
# How much each look at the backlog weighs in the feed's backlog level, and the level
# that makes it steady: from none, some 20 looks in a row (a second or two
# of writes); a drain's backlog also goes quiet now and then.
BACKLOG_WEIGHT = 0.1
STEADY = 0.9


class CacheFeed:
    def __init__(
        self,
        writer: CacheWriter,
        max_pending: int,
        on_written: Callable[[float], None] = lambda seconds: None,
        on_error: Callable[[str, RedisUnavailable | None], None] = lambda reason, exc: None,
        *,
        interval_s: float = 0.0,
        backlog: Callable[[], bool] = lambda: True,
        window_in_backlog: bool = True,
        max_points: int = MAX_PENDING_POINTS,
        backlog_share: float = 1.0,
        steady: float = STEADY,
    ) -> None:
        """``on_written(seconds)`` hears of every write that succeeded and how
        long it took; ``on_error(reason, exc)`` hears of every batch the cache misses:
        reason "backlog" (skipped, exc None) or "unavailable" (Redis failed).
        ``interval_s``: the least time from the start of one write to the
        start of the next while ``backlog()`` is true; ``backlog_share``: the
        largest share of the time spent writing while the backlog is steady
        (1: no limit)."""
        if not 0 < backlog_share <= 1:
            raise ValueError("backlog_share must be in (0, 1]")
        self._writer = writer
        self._queue: asyncio.Queue[list[Point]] = asyncio.Queue(max_pending)
        self._max_points = max_points
        self._queued_points = 0
        self._interval_s = interval_s
        self._backlog = backlog
        self._window_in_backlog = window_in_backlog
        self._backlog_share = backlog_share
        self._steady = steady
        self._backlog_level = 0.0  # the recent looks at backlog(), weighted to the latest
        self._busy = False  # holding points taken from the queue
        self._on_written = on_written
        self._on_error = on_error

    def put(self, points: list[Point]) -> None:
        """Never waits: a full queue skips the batch."""
        if self._queued_points and self._queued_points + len(points) > self._max_points:
            self._skip(points)
            return
        try:
            self._queue.put_nowait(points)
        except asyncio.QueueFull:
            self._skip(points)
            return
        self._queued_points += len(points)

    def _skip(self, points: list[Point]) -> None:
        self._writer.note_lost(points)
        self._on_error("backlog", None)

    def _take(self) -> list[Point]:
        points = self._queue.get_nowait()
        self._queued_points -= len(points)
        return points

    @property
    def idle(self) -> bool:
        """Nothing waits to be written, nor is being written."""
        return not self._busy and self._queue.empty()

    async def run(self) -> None:
        """Writes what is put, until cancelled."""
        queue = self._queue
        last = -self._interval_s
        took = 0.0  # the last write's time
        while True:
            points = await queue.get()
            self._queued_points -= len(points)
            self._busy = True
            try:
                backlog, now = self._backlog(), time.monotonic()
                level = self._backlog_level * (1 - BACKLOG_WEIGHT) + BACKLOG_WEIGHT * backlog
                self._backlog_level = level
                gap = self._interval_s
                if backlog and level >= self._steady:
                    gap = max(gap, took / self._backlog_share)
                wait = last + gap - now
                if wait > 0 and backlog:
                    await asyncio.sleep(wait)
                last = time.monotonic()
                window = self._window_in_backlog or not backlog
                # Latest values only: the write keeps one point per series,
                # so everything waiting goes, and the newest points with it.
                merge_up_to = MERGE_UP_TO if window else self._max_points
                if not queue.empty():
                    points = [*points]
                    while not queue.empty() and len(points) < merge_up_to:
                        points.extend(self._take())
                try:
                    await self._writer.write(points, time.time_ns() // 1000, window=window)
                finally:
                    took = time.monotonic() - last
            except RedisUnavailable as exc:  # the writer noted the loss
                self._on_error("unavailable", exc)
            else:
                self._on_written(took)
            finally:
                self._busy = False
