"""What each endpoint does, apart from HTTP: the web layer (bridge.api.app)
parses requests into these calls and turns results and ApiProblems into
responses. Parameters are checked by bridge.api.params, answers written by
bridge.api.answers.

Every failure an endpoint can meet is an ApiProblem (bridge.api.problems)
with its status and a detail that says what to do. The database being down
is a 503, never a 500; Redis being down is not an error at all: reads fall
back to the database and say so in ``X-Cache``.

The cache is read through a CacheReader; HTTP ingest writes to it through a
CacheWriter of its own (behind bridge.api.ingest's feed). What a submit does
is bridge.api.submit's; Api opens what it writes through.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Literal

import asyncpg

from bridge.api import answers, store
from bridge.api.answers import Json
from bridge.api.ingest import IngestWriter
from bridge.api.keys import ApiKey, KeyChecker
from bridge.api.metrics import ApiMetrics
from bridge.api.params import DAY_US, check_id, check_metrics, page_size, time_range
from bridge.api.problems import ApiProblem
from bridge.api.publish import BrokerIngest
from bridge.api.replica import ReplicaGate
from bridge.api.series import SeriesQuery, SeriesReader, SeriesResult, Step, TooManyPoints
from bridge.api.store import Mode, Selection, to_us
from bridge.api.submit import Submissions
from bridge.api.summary import summarize
from bridge.cache.reader import CacheReader
from bridge.cache.writer import CacheWriter
from bridge.config import Settings
from bridge.db.connect import where
from bridge.db.migrate import recorded
from bridge.errors import RedisUnavailable
from bridge.sink.timescale import TimescaleSink, is_transient

log = logging.getLogger("bridge.api")


class Api:
    """The endpoints' logic, with the connections they share. Use as
    ``async with Api(settings) as api``; entering succeeds while PostgreSQL
    or Redis is down (readiness says so), and they are used once they are up."""

    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ApiMetrics()
        self._pool: asyncpg.Pool | None = None
        self._mode: Mode | None = None
        self._stack = contextlib.AsyncExitStack()
        self._cache: CacheReader | None = None
        self._broker: BrokerIngest | None = None
        self._submissions: Submissions | None = None
        self._keys: KeyChecker | None = None
        self._series: SeriesReader | None = None
        self._replica: ReplicaGate | None = None

    async def __aenter__(self) -> Api:
        s = self.settings
        self._pool = await self._open_pool(s.database.url)
        if s.database.read_url:
            replica = await self._open_pool(s.database.read_url)
            self._replica = ReplicaGate(replica)
        cache_writer: CacheWriter | None = None
        if s.redis.enabled:
            timeout_s = min(s.redis.timeout_s, 0.5)  # a read must not wait long
            self._cache = await self._stack.enter_async_context(
                CacheReader(s.redis.url, prefix=s.redis.prefix, timeout_s=timeout_s)
            )
            cache_writer = await self._stack.enter_async_context(
                CacheWriter(
                    s.redis.url,
                    window_s=s.redis.window_s,
                    prefix=s.redis.prefix,
                    timeout_s=timeout_s,
                    future_skew_s=s.limits.max_future_skew_s,
                )
            )
        # HTTP submits are a few points each: one statement, not COPY's six round trips.
        db = await self._stack.enter_async_context(TimescaleSink(s.database, one_statement=True))
        ingest = await self._stack.enter_async_context(
            IngestWriter(db, cache_writer, self.metrics.commit)
        )
        if s.api.ingest_via == "broker":
            assert s.api.broker is not None  # the settings require it
            fallbacks = self.metrics.broker_fallbacks
            self._broker = await self._stack.enter_async_context(
                BrokerIngest(
                    s.api.broker,
                    s.mqtt.routes,
                    s.limits,
                    client_id=f"{s.mqtt.client_id}-api",
                    timeout_s=s.api.broker_timeout_s,
                    on_fallback=lambda reason, n: fallbacks.labels(reason).inc(n),
                    reconnect_s=(s.mqtt.reconnect_min_s, s.mqtt.reconnect_max_s),
                )
            )
        self._submissions = Submissions(
            s.limits, s.api.ingest_timeout_s, self.metrics, ingest, self._broker
        )
        self._keys = KeyChecker(self._pool, s.api.key_cache_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open_pool(self, url: str) -> asyncpg.Pool:
        s = self.settings
        pool = await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=s.api.db_pool_size,
            timeout=s.database.connect_timeout_s,
            command_timeout=30,
            max_inactive_connection_lifetime=300,
        )
        self._stack.push_async_callback(pool.close)
        return pool

    # ------------------------------------------------------------ plumbing
    @contextlib.asynccontextmanager
    async def _db(self) -> AsyncIterator[asyncpg.Connection]:
        assert self._pool is not None, "use Api inside 'async with'"
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except Exception as exc:
            if is_transient(exc):
                raise self._db_problem(exc) from exc
            raise

    def connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection; a transient database error becomes a 503 problem."""
        return self._db()

    def _db_problem(self, exc: BaseException) -> ApiProblem:
        return ApiProblem(
            503,
            "Database Unavailable",
            f"PostgreSQL at {where(self.settings.database.url)} cannot answer now "
            f"({type(exc).__name__}); retry later. Recent values may still be read.",
            headers={"Retry-After": "5"},
        )

    async def _mode_of(self, conn: asyncpg.Connection) -> Mode:
        if self._mode is None:
            applied = await recorded(conn)
            if not applied:
                raise ApiProblem(
                    503,
                    "Schema Missing",
                    "the database has no bridge schema; run `bridge db migrate`",
                )
            self._mode = "timescaledb" if applied[0].mode == "timescaledb" else "plain"
        return self._mode

    def _reader(self, mode: Mode) -> SeriesReader:
        if self._series is None:
            s = self.settings
            self._series = SeriesReader(mode, self._cache, s.api.series_points, s.redis.window_s)
        return self._series

    async def _history(self, query: SeriesQuery) -> tuple[SeriesResult, str]:
        """The series, and which database served its older part: the replica
        when it has replayed past the read's horizon, else the primary."""
        if self._mode is None:
            async with self._db() as conn:
                await self._mode_of(conn)
        assert self._mode is not None
        reader = self._reader(self._mode)
        cut, state = await reader.cut(time.time_ns() // 1000)
        replica = self._replica
        try:
            async with self._db() as conn:
                if replica is None or not await replica.covers(conn):
                    return await reader.read_at(conn, query, cut, state), "primary"
            async with replica.connection() as conn:
                return await reader.read_at(conn, query, cut, state), "replica"
        except RedisUnavailable:  # it went away mid-request: all from the primary
            async with self._db() as conn:
                return await reader.read_at(conn, query, None, "unavailable"), "primary"

    def _range(self, start: str | None, end: str | None) -> tuple[int, int]:
        return time_range(
            start,
            end,
            now_us=time.time_ns() // 1000,
            max_days=self.settings.api.max_range_days,
        )

    # ------------------------------------------------------------ auth
    async def authorize(self, token: str | None, scope: Literal["read", "write"]) -> ApiKey:
        """The request's key, if it has the scope; else a 401 or 403 problem."""
        assert self._keys is not None
        try:
            return await self._keys.require(token, scope)
        except Exception as exc:
            if is_transient(exc):
                raise self._db_problem(exc) from exc
            raise

    # ------------------------------------------------------------ endpoints
    async def devices(
        self,
        *,
        site: str | None,
        device_type: str | None,
        status: Literal["online", "offline"] | None,
        after: str | None,
        limit: int | None,
    ) -> Json:
        a = self.settings.api
        for name, value in (("site", site), ("type", device_type), ("after", after)):
            if value is not None:
                check_id(value, name, self.settings.limits.max_id_len)
        size = page_size(limit, a.page_size, a.max_page_size)
        async with self._db() as conn:
            rows = await store.devices(
                conn,
                site=site,
                device_type=device_type,
                online=None if status is None else status == "online",
                online_after_s=a.online_after_s,
                after=after,
                limit=size + 1,
            )
        more = len(rows) > size
        rows = rows[:size]
        return {
            "items": [answers.device(d, a.online_after_s) for d in rows],
            "next": rows[-1].device_id if more else None,
        }

    async def device(self, device_id: str) -> tuple[Json, dict[str, str]]:
        check_id(device_id, "device_id", self.settings.limits.max_id_len)
        async with self._db() as conn:
            row = await store.device(conn, device_id)
            if row is None:
                raise ApiProblem(404, "Not Found", f"no device {device_id!r} in the registry")
            latest, state = await self._latest(device_id)
            if not latest and row.last_seen is not None:
                # Not in the cache (Redis down, or a device silent for a while).
                since = to_us(row.last_seen) - DAY_US
                found = await store.latest(conn, device_id, since)
                latest = {m: (t, v) for m, (t, v) in found.items()}
            texts = {}
            if row.last_seen is not None:  # the cache holds no strings: always the database
                texts = await store.latest_texts(conn, device_id, to_us(row.last_seen) - DAY_US)
        body = answers.device(row, self.settings.api.online_after_s)
        body["latest"] = answers.latest(latest)
        body["latest_text"] = answers.latest_text(texts)
        return body, {"X-Cache": state}

    async def _latest(self, device_id: str) -> tuple[dict[str, tuple[int, float]], str]:
        if self._cache is None:
            return {}, "bypass"
        self.metrics.cache_requests.inc()
        try:
            got = await self._cache.latest(device_id)
        except RedisUnavailable:
            self.metrics.cache_unavailable.inc()
            return {}, "unavailable"
        if not got:
            return {}, "miss"
        self.metrics.cache_hits.inc()
        return {m: (t, float(v)) for m, (t, v) in got.items()}, "hit"

    async def telemetry(
        self,
        device_id: str,
        *,
        metrics: list[str] | None,
        start: str | None,
        end: str | None,
        step: Step,
    ) -> tuple[Json, dict[str, str]]:
        lim = self.settings.limits
        check_id(device_id, "device_id", lim.max_id_len)
        check_metrics(metrics, lim.max_metric_len)
        start_us, end_us = self._range(start, end)
        query = SeriesQuery(device_id, metrics or None, start_us, end_us, step)
        try:
            result, source = await self._history(query)
        except TooManyPoints as exc:
            raise ApiProblem(422, "Too Many Points", str(exc)) from None
        if result.cache != "bypass":
            if result.cache == "unavailable":
                self.metrics.cache_unavailable.inc()
            else:
                self.metrics.cache_requests.inc()
                if result.cache == "hit":
                    self.metrics.cache_hits.inc()
        body = await answers.telemetry(device_id, start_us, end_us, result)
        return body, {"X-Cache": result.cache, "X-Database": source}

    async def texts(
        self,
        device_id: str,
        *,
        metrics: list[str] | None,
        start: str | None,
        end: str | None,
        limit: int,
    ) -> Json:
        """A device's string values in [start, end), at most ``limit``."""
        lim = self.settings.limits
        check_id(device_id, "device_id", lim.max_id_len)
        check_metrics(metrics, lim.max_metric_len)
        start_us, end_us = self._range(start, end)
        sel = Selection([device_id], metrics or None, start_us, end_us)
        async with self._db() as conn:
            found, more = await store.texts(conn, sel, limit)
        return await answers.texts(device_id, start_us, end_us, found, more)

    async def summary(
        self,
        *,
        device_id: str | None,
        metrics: list[str] | None,
        start: str | None,
        end: str | None,
    ) -> Json:
        if device_id is not None:
            check_id(device_id, "device_id", self.settings.limits.max_id_len)
        check_metrics(metrics, self.settings.limits.max_metric_len)
        start_us, end_us = self._range(start, end)
        sel = Selection(
            None if device_id is None else [device_id], metrics or None, start_us, end_us
        )
        async with self._db() as conn:
            found = await summarize(conn, await self._mode_of(conn), sel)
        return answers.summary(start_us, end_us, found)

    async def submit(self, body: bytes, *, batch: bool) -> Json:
        assert self._submissions is not None, "use Api inside 'async with'"
        return await self._submissions.submit(body, batch=batch)

    # ------------------------------------------------------------ health
    async def ready(self) -> tuple[bool, Json]:
        """Ready when the database answers and holds the schema; Redis is reported,
        not required (reads fall back to the database)."""
        checks: Json = {}
        ok = True
        try:
            async with self._db() as conn:
                await self._mode_of(conn)
            checks["database"] = "ok"
        except ApiProblem as exc:
            ok, checks["database"] = False, exc.detail
        except Exception as exc:  # e.g. a wrong password: not ready, and say why
            ok, checks["database"] = False, f"{type(exc).__name__}: {exc}"
        if self._cache is not None:
            try:
                await self._cache.complete_since()
                checks["redis"] = "ok"
            except RedisUnavailable as exc:
                checks["redis"] = f"degraded: {exc}"
        if self._broker is not None:
            checks["broker"] = (
                "ok"
                if self._broker.connected
                else f"degraded: {self._broker.where}: {self._broker.last_error}; "
                "submits are committed directly"
            )
        return ok, {"status": "ready" if ok else "not ready", "checks": checks}
