"""`bridge alarms run`: the evaluator process.

    workers (after commit) --XADD--> Redis Stream --XREAD from checkpoint--> Engine
                                                                              |
        PostgreSQL, one transaction: series state + alerts + events + checkpoint
                                                                              |
                                           Notifier (outbox) --> MQTT alerts/…, webhook

Contracts:
  * One evaluator at a time: it holds a PostgreSQL advisory lock for as long
    as it runs; a second one started beside it waits as a standby and takes
    over when the first one's connection ends (a crash releases the lock).
  * Exactly-once effect: the stream position is stored with the state and
    the alarms it produced, in one transaction (bridge.alarms.store.commit).
    After a kill -9 it restarts from that position with that state, so it
    neither repeats a transition nor skips one.
  * Point-time order across workers: N workers commit one series' points in
    parallel, so the stream holds them a few batches out of order. What is
    read is held ``alarms.reorder_s`` (default 1 s) and then judged sorted by
    point time; what is later still is a late point (bridge.alarms.evaluate).
    The checkpoint only moves past entries that were judged.
  * Bounded: reads ``READ_COUNT`` entries at a time, holds at most
    ``MAX_HELD_POINTS`` points (it stops reading until some are judged), and
    judges at most about ``JUDGE_POINTS`` per step, so that a long backlog in
    the stream never holds the event loop for long (the MQTT session's
    keepalive, the notifier and /healthz run between steps); state per series
    is bounded by the engine.
  * A gap (entries trimmed before they were read: the evaluator was down
    longer than ``alarms.stream_max_len`` batches) is logged and counted;
    the points are stored, only their evaluation is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from redis.exceptions import RedisError

from bridge.alarms import store
from bridge.alarms.evaluate import US, Engine, Transition
from bridge.alarms.feed import stream_key
from bridge.alarms.notify import Notifier
from bridge.alarms.rules import AnyRule
from bridge.config import Settings
from bridge.source.session import Session
from core import http
from core.tasks import cancel_and_wait
from core.types import Point

log = logging.getLogger("bridge.alarms")
LOCK_KEY = 0x616C726D  # "alrm": one evaluator per database
READ_COUNT = 200
MAX_HELD_POINTS = 100_000
JUDGE_POINTS = 20_000  # points judged per step, between reads of the stream
# Points judged between two turns of the event loop, so that /metrics,
# /health and the MQTT session's keepalive answer during a step: with ten
# rules on a metric a point costs ~100 µs, and a whole step of 20,000 once
# blocked for 5 s (outlier rules then read their whole window), past a
# scrape's timeout.
OBSERVE_CHUNK = 500
BEHIND_EVERY_S = 0.5  # how often bridge_alarm_behind_seconds looks at the stream's head


def stream_id(value: str | bytes) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Evaluator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.key = stream_key(settings)
        self.registry = CollectorRegistry()
        self.points = Counter("bridge_alarm_points", "Points evaluated", registry=self.registry)
        self.gaps = Counter(
            "bridge_alarm_stream_gaps", "Times entries were trimmed unread", registry=self.registry
        )
        self.open_alarms = Gauge(
            "bridge_alarm_open_series", "Series with an open alarm", registry=self.registry
        )
        self.engine_counts = {
            "too_late": Counter(
                "bridge_alarm_points_too_late",
                "Points older than their rule's window behind the series' newest: not judged",
                registry=self.registry,
            ),
            "refused_series": Counter(
                "bridge_alarm_series_refused",
                "Points of series beyond alarms.max_series: not judged",
                registry=self.registry,
            ),
            "cut_short": Counter(
                "bridge_alarm_points_cut_short",
                "Points judged on a window that alarms.max_samples cut short (raise it)",
                registry=self.registry,
            ),
        }
        self._counted = dict.fromkeys(self.engine_counts, 0)
        self.behind = Gauge(
            "bridge_alarm_behind_seconds",
            "How far the points judged trail the newest in the alarm stream, by the entries' "
            "times (about alarms.reorder_s when keeping up; growing: add rules sparingly)",
            registry=self.registry,
        )
        self._behind_read = 0.0
        self._cut_rules_said: set[int] = set()
        self.engine = Engine({}, settings.alarms.max_series, settings.alarms.max_samples)
        self.last_id = "0-0"
        self._devices: dict[str, tuple[str | None, str | None]] = {}  # id -> (site, type)
        self._pending: list[Transition] = []
        self._held: list[tuple[float, str, list[list[Any]]]] = []  # (read at, id, rows)
        self._read_id = "0-0"  # read up to (held or judged); last_id: judged up to
        self._saved_id = "0-0"  # the checkpoint as committed
        self._flushed = 0.0
        self.holding_lock = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        server = None
        if s.alarms.http_port:
            server = await http.serve(s.http.host, s.alarms.http_port, self._routes())
        session = Session(s.mqtt, s.alarms.client_id, [], lambda *a: None)
        notifier = Notifier(s.alarms, session, self.registry)
        pool = await asyncpg.create_pool(s.database.url, min_size=1, max_size=3)
        tasks = [
            asyncio.create_task(session.run(stop), name="mqtt"),
            asyncio.create_task(notifier.run(pool), name="notify"),
        ]
        client = aioredis.Redis.from_url(s.redis.url, socket_connect_timeout=s.redis.timeout_s)
        try:
            async with pool.acquire() as conn:
                await self._lock(conn, stop)
                if stop.is_set():
                    return
                await self._start(conn, client)
                while not stop.is_set():
                    await self._step(conn, client, notifier)
                    for task in tasks:
                        if task.done() and not stop.is_set():  # a bug: end, to be restarted
                            raise RuntimeError(
                                f"task {task.get_name()} ended: {task.exception()!r}"
                            )
        finally:
            await cancel_and_wait(tasks)
            await session.close()
            await client.aclose()
            await pool.close()
            if server is not None:
                server.close()

    async def _lock(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        waited = False
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.holding_lock.set()
                return
            if not waited:
                log.info("another evaluator holds the lock; standing by")
                waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _start(self, conn: asyncpg.Connection, client: aioredis.Redis) -> None:
        rules = await store.load_rules(conn)
        self.engine.set_rules(rules)
        self.engine.series = {
            k: v for k, v in (await store.load_series(conn)).items() if k[0] in rules
        }
        self.last_id = self._read_id = self._saved_id = await store.checkpoint(conn, self.key)
        log.info(
            "evaluating %d rule(s) over %d series from %s after %s",
            len(rules),
            len(self.engine.series),
            self.key,
            self.last_id,
        )
        await self._check_gap(client)
        self._rules_read = time.monotonic()

    async def _check_gap(self, client: aioredis.Redis) -> None:
        if self.last_id == "0-0":
            return
        try:
            info: dict[Any, Any] = await client.xinfo_stream(self.key)
        except RedisError:
            return  # no stream yet
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if deleted and stream_id(deleted) > stream_id(self.last_id):
            self.gaps.inc()
            log.warning(
                "the alarm stream was trimmed past %s (up to %s) before it was read: the "
                "points in between are stored but were not evaluated; raise "
                "alarms.stream_max_len if the evaluator is often down this long",
                self.last_id,
                deleted,
            )

    async def _step(
        self, conn: asyncpg.Connection, client: aioredis.Redis, notifier: Notifier
    ) -> None:
        a = self.settings.alarms
        if time.monotonic() - self._rules_read >= a.rules_refresh_s:
            self.engine.set_rules(await store.load_rules(conn))
            self._devices.clear()
            self._rules_read = time.monotonic()
        reply: Any = []
        if sum(len(rows) for _, _, rows in self._held) < MAX_HELD_POINTS:
            try:
                block = a.reorder_s if self._held else a.tick_s
                reply = await client.xread(
                    {self.key: self._read_id}, count=READ_COUNT, block=max(1, int(block * 1000))
                )
            except (RedisError, OSError) as exc:
                log.warning("alarm stream unreadable (retrying): %s", exc)
                await asyncio.sleep(a.tick_s)
        else:  # holding enough: judge what is due first
            await asyncio.sleep(max(0.0, self._held[0][0] + a.reorder_s - time.monotonic()))
        now = time.monotonic()
        for _, entries in reply:
            for entry_id, fields in entries:
                self._read_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self._held.append((now, self._read_id, orjson.loads(fields[b"p"])))
        due = judged = 0
        while (
            due < len(self._held)
            and now - self._held[due][0] >= a.reorder_s
            and judged < JUDGE_POINTS
        ):
            judged += len(self._held[due][2])
            due += 1
        if due:
            rows = [row for _, _, entry in self._held[:due] for row in entry]
            rows.sort(key=lambda row: row[0])
            await self._observe(conn, rows)
            self.last_id = self._held[due - 1][1]
            del self._held[:due]
        if now - self._behind_read >= BEHIND_EVERY_S:
            await self._measure_behind(client)
            self._behind_read = now
        self._pending += self.engine.tick(int(self.clock() * US))
        if self._pending or time.monotonic() - self._flushed >= a.flush_s:
            await self._flush(conn)
            if notifier is not None:
                notifier.wake.set()

    async def _measure_behind(self, client: aioredis.Redis) -> None:
        """The stream's newest entry time less that of the last one judged
        (of its oldest, before any)."""
        newest: Any
        oldest: Any
        judged: str | bytes = self.last_id
        try:
            newest = await client.xrevrange(self.key, count=1)
            if judged == "0-0":
                oldest = await client.xrange(self.key, count=1)
                judged = oldest[0][0] if oldest else judged
        except (RedisError, OSError):
            return  # the read says so, and retries
        if newest:
            ms = stream_id(newest[0][0])[0] - stream_id(judged)[0]
            self.behind.set(max(0, ms) / 1000)

    async def _observe(self, conn: asyncpg.Connection, rows: list[list[Any]]) -> None:
        needs_registry = any(
            r.select.device_type is not None or r.select.site is not None
            for r in self.engine.rules.values()
        )
        if needs_registry:
            unknown = list({r[1] for r in rows} - self._devices.keys())
            if unknown:
                found = await conn.fetch(
                    "SELECT device_id, site_id, device_type FROM devices "
                    "WHERE device_id = ANY($1::text[])",
                    unknown,
                )
                for row in found:
                    self._devices[row["device_id"]] = (row["site_id"], row["device_type"])
        now_us = int(self.clock() * US)
        observe = self.engine.observe
        for start in range(0, len(rows), OBSERVE_CHUNK):
            chunk = rows[start : start + OBSERVE_CHUNK]
            for time_us, device_id, site_id, metric, value in chunk:
                site, device_type = self._devices.get(device_id, (None, None))
                point = Point(time_us, device_id, metric, value)
                self._pending += observe(point, site_id or site, device_type, now_us=now_us)
            self.points.inc(len(chunk))
            await asyncio.sleep(0)  # the loop's turn: nothing else touches the engine
        self._count_engine()

    def _count_engine(self) -> None:
        """The engine's counts to /metrics, and a warning for each rule whose
        window alarms.max_samples cuts short, once."""
        for name, counter in self.engine_counts.items():
            now = getattr(self.engine, name)
            counter.inc(now - self._counted[name])
            self._counted[name] = now
        for rule_id in self.engine.cut_rules - self._cut_rules_said:
            self._cut_rules_said.add(rule_id)
            log.warning(
                "rule %s needs more than alarms.max_samples (%d) samples of a series for its "
                "window, so it is judged on the newest only and may never fire: raise "
                "alarms.max_samples or shorten the rule's window",
                _name(self.engine.rules.get(rule_id)),
                self.engine.max_samples,
            )

    async def _flush(self, conn: asyncpg.Connection) -> None:
        series = self.engine.series
        dirty = [(k, s) for k, s in series.items() if s.dirty]
        if not dirty and not self._pending and self.last_id == self._saved_id:
            self._flushed = time.monotonic()
            return
        await store.commit(
            conn,
            stream=self.key,
            last_id=self.last_id,
            dirty=dirty,
            transitions=self._pending,
            rules=self.engine.rules,
        )
        self._saved_id = self.last_id
        for _, s in dirty:
            s.dirty = False
        for t in self._pending:
            log.info(
                "alarm %s: rule %s on %s/%s at %s (value %g)",
                t.kind,
                _name(self.engine.rules.get(t.rule_id)),
                t.device_id,
                t.metric or "*",
                store.when(t.at_us).isoformat(),
                t.value,
            )
        self._pending = []
        self._flushed = time.monotonic()
        self.open_alarms.set(sum(1 for s in series.values() if s.open))

    def _routes(self) -> dict[str, http.Handler]:
        async def health() -> http.Response:
            body = {
                "status": "ok",
                "evaluating": self.holding_lock.is_set(),
                "read_up_to": self.last_id,
            }
            return 200, "application/json", orjson.dumps(body)

        async def metrics() -> http.Response:
            return 200, "text/plain; version=0.0.4", generate_latest(self.registry)

        return {"/healthz": health, "/metrics": metrics}


def _name(rule: AnyRule | None) -> str:
    return "?" if rule is None else rule.name
