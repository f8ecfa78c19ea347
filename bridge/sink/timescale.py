"""The database sink: a batch in, committed rows out, idempotently.

One batch is one transaction on one pooled connection:
  1. its points: INSERT INTO telemetry ... FROM unnest(arrays) ON CONFLICT DO
     NOTHING (``database.write_route = "unnest"``, the default), or a binary
     COPY into a per-connection temporary staging table followed by INSERT
     ... SELECT FROM it ON CONFLICT DO NOTHING (``"copy"``); either way a
     redelivered or republished point is stored once (the unique key is
     device_id, metric, time);
  2. its text values: INSERT INTO telemetry_text ... FROM unnest(arrays) ON
     CONFLICT DO NOTHING, the same key and idempotency;
  3. the batch's dead letters into rejected_messages;
  4. the device registry, for devices not updated in the last
     sql.REGISTRY_REFRESH_S seconds (first_seen, last_seen, site).
A batch of points alone (the usual one) goes on the unnest route as one
statement, registry included: one round trip where the COPY route takes six
(BEGIN, COPY's two, INSERT, registry, COMMIT). That statement is first tried
without ON CONFLICT, which costs the database less per row; a batch holding
a point already stored fails whole on the unique key and goes again with ON
CONFLICT DO NOTHING, as do the writes of the next GUARDED_S seconds (a
unique violation is class 23 but never poison: it is caught first). On
the unnest route rows go in series by series (``_by_series``). Works the
same on a hypertable and on plain partitions. The unnest route costs
PostgreSQL about a fifth less CPU per row than the staging COPY
(bench/bench_ingest.py, "copy limit"), and a backlog drains faster on it
(bench/README.md, "the drain levers").

Errors, by what the caller must do (classified here and only here, by
SQLSTATE class, never by message text; the API asks ``is_transient`` too):
  * transient (``is_transient``): connection lost or refused, server starting
    or stopping, out of resources, serialization failure or deadlock (classes
    08, 53, 57, 40; OS, timeout and protocol errors) -> TransientDbError
    (bridge.errors, a DatabaseUnavailable): retry the same batch with backoff.
  * poison data (``is_poison``, classes 22, 23): one row the database will
    never take. The sink bisects the batch (points and text values) to find
    it, commits every other row, and returns the poison rows so they are dead-lettered, never their
    batch-mates.
  * anything else (missing table, privilege, auth) -> TransientDbError too,
    with a message saying what to fix: the bridge keeps retrying and stays
    unready rather than dropping data, and recovers once it is fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import asyncpg

from bridge.batch import Batch
from bridge.config import DatabaseSettings
from bridge.db.connect import where
from bridge.errors import TransientDbError
from bridge.sink import sql
from bridge.sink.registry import RegistryCache
from core.types import DeadLetter, Point, TextPoint

log = logging.getLogger("bridge.sink.timescale")

GUARDED_S = 10.0
"""After a batch met a stored point, writes use ON CONFLICT for this long:
redeliveries come in runs (a restart, a resent backlog), and each failed
first try costs the database the rows it inserted before the conflict."""

TRANSIENT_CLASSES = frozenset({"08", "53", "57", "40"})
POISON_CLASSES = frozenset({"22", "23"})


@dataclass(slots=True)
class WriteResult:
    written: int = 0  # new rows
    duplicates: int = 0  # rows that were already there
    texts_written: int = 0  # new telemetry_text rows
    texts_duplicate: int = 0
    poison: list[tuple[Point | TextPoint, str]] = field(default_factory=list)  # (point, why)
    commit_seconds: list[float] = field(default_factory=list)


def is_poison(exc: BaseException) -> bool:
    """Data the database will never take (classes 22, 23): isolate the row."""
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in POISON_CLASSES


def is_transient(exc: BaseException) -> bool:
    """The database is down, starting, stopping or busy: the same request may
    succeed later unchanged (the connection layer's errors, or classes 08, 53,
    57, 40). Errors that are neither this nor poison need a person (schema,
    grants, credentials)."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in TRANSIENT_CLASSES


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate:
        return f"sqlstate_{exc.sqlstate[:2]}"
    return type(exc).__name__


class TimescaleSink:
    """Writes batches through a small pool. The pool connects lazily, so the
    bridge starts (and waits, unready) while the database is down.

    ``one_statement``: the unnest route whatever ``write_route`` says (HTTP
    ingest, whose batches are small and where round trips cost more than
    rows)."""

    def __init__(self, settings: DatabaseSettings, *, one_statement: bool = False) -> None:
        self._settings = settings
        self._copy = settings.write_route == "copy" and not one_statement
        self._pool: asyncpg.Pool | None = None
        self._registry = RegistryCache()
        self._guarded_until = 0.0  # see GUARDED_S

    async def __aenter__(self) -> TimescaleSink:
        self._pool = await asyncpg.create_pool(
            self._settings.url,
            min_size=0,
            max_size=self._settings.pool_size,
            init=self._init_connection,
            reset=_keep_session,
            timeout=self._settings.connect_timeout_s,
            command_timeout=60,
            max_inactive_connection_lifetime=300,
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        if self._copy:
            await conn.execute(sql.CREATE_STAGING)

    def pool_stats(self) -> tuple[int, int]:
        """(connections in use, idle connections)."""
        if self._pool is None:
            return 0, 0
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return size - idle, idle

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with self._pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    async def write(self, batch: Batch) -> WriteResult:
        """Commits the batch. Raises TransientDbError when nothing may be assumed
        written; the caller retries the whole batch (idempotent)."""
        result = WriteResult()
        try:
            await self._write(batch.points, batch.dead_letters, batch.sites, result, batch.texts)
        except TransientDbError:
            raise
        except Exception as exc:
            if not is_poison(exc):
                raise self._transient(exc) from exc
            # Some row will never go in: find it, commit the rest.
            log.warning(
                "batch of %d points hit bad data (%s); isolating it", len(batch.points), exc
            )
            result = WriteResult()
            await self._bisect([*batch.points, *batch.texts], result)
            await self._write([], batch.dead_letters, batch.sites, result)
        return result

    async def _bisect(self, rows: Sequence[Point | TextPoint], result: WriteResult) -> None:
        points = [r for r in rows if not isinstance(r, TextPoint)]
        texts = [r for r in rows if isinstance(r, TextPoint)]
        try:
            await self._write(points, [], {}, result, texts)
        except TransientDbError:
            raise
        except Exception as exc:
            if not is_poison(exc):
                raise self._transient(exc) from exc
            if len(rows) == 1:
                result.poison.append((rows[0], f"{exc} (SQLSTATE {_sqlstate(exc)})"[:500]))
                return
            mid = len(rows) // 2
            await self._bisect(rows[:mid], result)
            await self._bisect(rows[mid:], result)

    async def _write(
        self,
        points: Sequence[Point],
        dead_letters: Sequence[DeadLetter],
        sites: dict[str, str | None],
        result: WriteResult,
        texts: Sequence[TextPoint] = (),
    ) -> None:
        assert self._pool is not None, "use the sink in `async with`"
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise self._transient(exc) from exc
        try:
            started = time.perf_counter()
            stale = self._registry.stale(sites)
            ids = sorted(stale)  # a fixed lock order: no deadlocks between workers
            registry = (ids, [stale[i] for i in ids])
            if not self._copy and not dead_letters and not texts:
                written = await self._one_statement(conn, registry, points)
            else:
                written, texts_written = await self._transaction(
                    conn, points, texts, dead_letters, registry, copy=self._copy
                )
                result.texts_written += texts_written
                result.texts_duplicate += len(texts) - texts_written
            self._registry.refreshed(stale)
            result.commit_seconds.append(time.perf_counter() - started)
            result.written += written
            result.duplicates += len(points) - written
        finally:
            await self._pool.release(conn)

    async def _one_statement(
        self,
        conn: asyncpg.Connection,
        registry: tuple[list[str], list[str | None]],
        points: Sequence[Point],
    ) -> int:
        """Points and registry in one statement; the rows written."""
        columns = _columns(points)
        if time.monotonic() >= self._guarded_until:
            try:
                status: str = await conn.execute(sql.ONE_STATEMENT_FIRST_TIME, *registry, *columns)
            except asyncpg.UniqueViolationError:
                self._guarded_until = time.monotonic() + GUARDED_S
            else:
                return int(status.rsplit(" ", 1)[1])  # "INSERT 0 <rows>"
        written: int = await conn.fetchval(sql.ONE_STATEMENT, *registry, *columns)
        return written

    @staticmethod
    async def _transaction(
        conn: asyncpg.Connection,
        points: Sequence[Point],
        texts: Sequence[TextPoint],
        dead_letters: Sequence[DeadLetter],
        registry: tuple[list[str], list[str | None]],
        *,
        copy: bool,
    ) -> tuple[int, int]:
        """The batch in one transaction; the points and the text values
        written. ``registry``: the devices to update and their sites. ``copy``:
        the points through the staging table, else from arrays with the
        registry (the one statement)."""
        written = texts_written = 0
        async with conn.transaction():
            if copy and points:
                await conn.copy_records_to_table(sql.STAGING, records=points)
                status = await conn.execute(sql.INSERT)
                written = int(status.rsplit(" ", 1)[1])
            elif not copy and (points or registry[0]):
                written = await conn.fetchval(sql.ONE_STATEMENT, *registry, *_columns(points))
            if texts:
                status = await conn.execute(sql.INSERT_TEXT, *zip(*texts, strict=True))
                texts_written = int(status.rsplit(" ", 1)[1])
            if dead_letters:
                await conn.execute(sql.DEAD_LETTER, *_dead_letter_columns(dead_letters))
            if copy and registry[0]:
                await conn.execute(sql.REGISTRY, *registry)
        return written, texts_written

    def _transient(self, exc: BaseException) -> TransientDbError:
        url = self._settings.url
        if isinstance(exc, asyncpg.PostgresError) and not is_transient(exc):
            hint = (
                "fix the cause (schema migrated? grants? credentials?); the bridge keeps retrying"
            )
        else:
            hint = "retrying with backoff"
        return TransientDbError(_reason(exc), f"database at {where(url)}: {exc!s:.300}; {hint}")


def _sqlstate(exc: BaseException) -> str:
    return getattr(exc, "sqlstate", None) or "?"


def _by_series(points: Sequence[Point]) -> list[Point]:
    """The points with each series' points side by side, in arrival order
    otherwise. PostgreSQL inserts each row into the unique index's leaf page
    of its series: consecutive rows of one series find that page in the CPU's
    cache, rows that take turns over hundreds of series (Sparkplug NDATA: a
    hundred series per message) each miss it. Grouping costs less here than
    the misses cost there (bench/README.md)."""
    groups: dict[str, dict[str, list[Point]]] = {}
    for point in points:
        metrics = groups.get(point[1])
        if metrics is None:
            metrics = groups[point[1]] = {}
        same = metrics.get(point[2])
        if same is None:
            metrics[point[2]] = [point]
        else:
            same.append(point)
    return [p for metrics in groups.values() for same in metrics.values() for p in same]


def _columns(points: Sequence[Point]) -> list[tuple[object, ...]]:
    """The points as the one statement's four arrays (empty ones for none),
    series by series."""
    return list(zip(*_by_series(points), strict=True)) or [(), (), (), ()]


def _dead_letter_columns(rows: Sequence[DeadLetter]) -> tuple[list[object], ...]:
    return (
        [r.received_us for r in rows],
        [r.topic for r in rows],
        [r.reason for r in rows],
        [r.detail for r in rows],
        [r.payload for r in rows],
        [r.payload_size for r in rows],
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, a no-op: the sink never changes session
    state (no SET, LISTEN, cursors or advisory locks; the staging table is
    emptied by each commit), and asyncpg's default reset costs a round trip
    per batch."""
