"""The one committer: a batch in, its rows committed or dead-lettered, the
outcome handed back. The MQTT pipeline and HTTP ingest both commit here.

    Batch --commit()--> TimescaleSink.write --> CommitResult --> the caller settles
               |  transient error: retry with backoff (or raise, retry off)
               |  rows refused for good: dead letters (router.db_rejected),
               |  committed in turn
               +--> cache (the committed numeric points; best effort, never waited on)

Contracts:
  * ``commit`` returns only once every point of the batch is committed or
    dead-lettered and every dead letter of the batch is committed. Only then
    may the caller settle: ack the batch's messages (``drain``'s ``settle``,
    the MQTT pipeline) or answer its requests (HTTP ingest).
  * Retry on (the MQTT pipeline): a transient database error (the sink's
    ``is_transient``, by SQLSTATE class) is retried with capped, jittered
    backoff for as long as it takes; the broker holds the rest meanwhile.
    Retry off (HTTP ingest, whose client retries): it raises
    TransientDbError at once; nothing of the batch may be assumed written,
    and writing it again is harmless (the sink is idempotent).
  * A row the database refuses for good costs only itself: the sink isolates
    it, the router makes its dead letter (the one place that does), and it
    is counted as ``points_rejected{reason="db_rejected"}``.
  * Text values (``Batch.texts``) are committed in the same transaction as
    the batch's points, with the same idempotency, and counted apart
    (``texts_written``, ``texts_duplicate``). The cache never sees them: it
    holds numeric windows and latest numbers (its Lua works on doubles); the
    API reads a text series' latest value from PostgreSQL, one index probe.
  * Counting is per batch, never per point: this is the ingest hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.backoff import Backoff
from bridge.batch import Batch, merged
from bridge.errors import TransientDbError
from bridge.router import db_rejected
from bridge.sink.timescale import TimescaleSink, WriteResult
from bridge.telemetry import CommitMetrics
from core.types import DeadLetter, Point, TextPoint

log = logging.getLogger("bridge.commit")

RETRY_FIRST_S = 0.1
RETRY_CAP_S = 10.0
LOG_EVERY_S = 10.0  # a database that stays down logs once per this, not per retry


@dataclass(slots=True)
class CommitResult:
    written: int = 0  # new rows
    duplicates: int = 0  # rows already stored (redeliveries, resent requests)
    texts_written: int = 0  # new telemetry_text rows
    texts_duplicate: int = 0
    # Points and text values refused for good, each with its dead letter
    # (committed too).
    refused: list[tuple[Point | TextPoint, DeadLetter]] = field(default_factory=list)


Settle = Callable[[Batch, CommitResult], None]


class Committer:
    """Commits batches through one sink; see the module's contracts.

    ``cache`` gets the points of each committed batch, less the refused ones;
    it must not wait (a CacheFeed's ``put``). ``db_ok`` is the outcome of the
    last write: True after a commit, False after a transient error.
    ``backlogged``: the last batch a writer took found others waiting."""

    def __init__(
        self,
        sink: TimescaleSink,
        metrics: CommitMetrics,
        *,
        retry: bool = True,
        cache: Callable[[list[Point]], None] | None = None,
        max_merged_points: int = 0,
    ) -> None:
        self._sink = sink
        self._max_merged_points = max_merged_points
        self._metrics = metrics
        self._retry = retry
        self._cache = cache
        self.db_ok = False
        # The last batch a writer took had others waiting behind it (merged or
        # not): the database is behind, though the queue may be empty now.
        self.backlogged = False

    async def commit(self, batch: Batch) -> CommitResult:
        """Commits the batch. Retry off: raises TransientDbError."""
        m = self._metrics
        written = await self._write(batch)
        out = CommitResult(
            written.written, written.duplicates, written.texts_written, written.texts_duplicate
        )
        if written.poison:
            out.refused = [(point, db_rejected(point, why)) for point, why in written.poison]
            m.points_rejected.labels("db_rejected").inc(len(out.refused))
            await self.commit(Batch(dead_letters=[letter for _, letter in out.refused]))
        for seconds in written.commit_seconds:
            m.commit_seconds.observe(seconds)
        m.points_written.inc(written.written)
        m.points_duplicate.inc(written.duplicates)
        if batch.texts:
            m.texts_written.inc(written.texts_written)
            m.texts_duplicate.inc(written.texts_duplicate)
        if batch.points or batch.texts:
            m.batches.inc()
            m.batch_points.observe(len(batch.points) + len(batch.texts))
            m.flush_seconds.observe(time.monotonic() - batch.opened)
            if self._cache is not None and batch.points:
                stored = _stored(batch.points, out.refused)
                if batch.uncached:  # Sparkplug is_historical: stored, not the latest value
                    stored = [p for p in stored if p not in batch.uncached]
                self._cache(stored)
        return out

    async def drain(self, batches: asyncio.Queue[Batch | None], settle: Settle) -> None:
        """One writer: commits the queue's batches in turn and settles each,
        until it takes None. Run one per database connection. Batches found
        waiting behind the one taken go into the same commit, up to
        ``max_merged_points`` points; each is settled with that commit's
        result (its hooks look up their own points in ``refused``)."""
        stop = False
        while not stop and (batch := await batches.get()) is not None:
            group, size = [batch], len(batch.points)
            self.backlogged = not batches.empty()
            while size < self._max_merged_points and not batches.empty():
                waiting = batches.get_nowait()
                if waiting is None:  # this writer's stop: after this commit
                    stop = True
                    break
                group.append(waiting)
                size += len(waiting.points)
            result = await self.commit(batch if len(group) == 1 else merged(group))
            for each in group:
                settle(each, result)

    async def ready(self) -> bool:
        """The database takes writes: the last one went in, or it answers now."""
        self.db_ok = self.db_ok or await self._sink.ping()
        return self.db_ok

    async def _write(self, batch: Batch) -> WriteResult:
        backoff = Backoff(RETRY_FIRST_S, RETRY_CAP_S)
        last_log = 0.0
        while True:
            try:
                result = await self._sink.write(batch)
            except TransientDbError as exc:
                self.db_ok = False
                if not self._retry:
                    raise
                self._metrics.db_retries.labels(exc.reason).inc()
                now = time.monotonic()
                if now - last_log > LOG_EVERY_S:
                    log.warning("batch of %d points not written: %s", len(batch.points), exc)
                    last_log = now
                await asyncio.sleep(backoff.delay())
            else:
                self.db_ok = True
                return result


def _stored(
    points: list[Point], refused: list[tuple[Point | TextPoint, DeadLetter]]
) -> list[Point]:
    """The points of a batch that are in the database after its commit."""
    if not refused:
        return points
    gone = {point for point, _ in refused}
    return [p for p in points if p not in gone]
