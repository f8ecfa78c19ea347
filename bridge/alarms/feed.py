"""The worker's side of alarms: committed points to the alarm stream.

Hung on ``Worker.after_commit`` (bridge.pipeline). Contracts:

  * Only committed points: the hook is called with a batch once its commit
    succeeded, and leaves out the points the database refused.
  * Never in the way: ``put`` does not wait. It keeps the points of metrics
    that some enabled rule selects (re-read every ``alarms.rules_refresh_s``;
    a rule without a metric selects every metric) and queues them as one
    stream entry per batch. At ``alarms.max_pending_batches`` queued entries a
    batch is skipped and counted (``bridge_alarm_feed_batches_total{outcome=
    "skipped"}``); so is one that Redis did not take.
  * One stream for every worker: N workers sharing a subscription XADD to
    the same Redis Stream, so one series' points, whichever worker took them,
    meet in one evaluator (bridge.alarms.service) that orders them by time.

What is lost here (a batch skipped, Redis down, a worker killed between
commit and XADD) is missing from evaluation only: the points are stored, and
no-data and the next points of the series judge it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Self

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from bridge.alarms import store
from bridge.batch import Batch
from bridge.commit import CommitResult
from bridge.config import Settings
from bridge.db.connect import connect
from bridge.errors import BridgeError

log = logging.getLogger("bridge.alarms")
CATCH_UP = 64  # entries per round trip when the queue has backed up


def stream_key(settings: Settings) -> str:
    return settings.redis.prefix + settings.alarms.stream


class AlarmFeed:
    """Use as ``async with AlarmFeed(settings, registry) as feed``, then hang
    ``feed.put`` on the worker and run ``feed.run()`` beside it."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.key = stream_key(settings)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(settings.alarms.max_pending_batches)
        self._metrics: frozenset[str] | None = None  # None: every metric
        self._client: aioredis.Redis | None = None
        self._logged = 0.0
        self.batches = Counter(
            "bridge_alarm_feed_batches",
            "Committed batches offered to the alarm stream, by outcome",
            ["outcome"],
            registry=registry,
        )

    async def __aenter__(self) -> Self:
        timeout = self.settings.redis.timeout_s
        self._client = aioredis.Redis.from_url(
            self.settings.redis.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:  # the filter from the start; until then every metric is sent
            conn = await connect(self.settings.database)
            try:
                self._metrics = store.selected_metrics(await store.load_rules(conn))
            finally:
                await conn.close()
        except (BridgeError, asyncpg.PostgresError, OSError) as exc:
            self._warn(f"alarm rules not read yet; every metric goes to the stream: {exc}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    def put(self, batch: Batch, result: CommitResult) -> None:
        wanted = self._metrics
        if wanted is not None and not wanted:
            return
        refused = {(p.time_us, p.device_id, p.metric) for p, _ in result.refused}
        sites = batch.sites
        rows = [
            (p.time_us, p.device_id, sites.get(p.device_id), p.metric, p.value)
            for p in batch.points
            if (wanted is None or p.metric in wanted)
            and (not refused or (p.time_us, p.device_id, p.metric) not in refused)
        ]
        if not rows:
            return
        try:
            self._queue.put_nowait(orjson.dumps(rows))
        except asyncio.QueueFull:
            self.batches.labels("skipped").inc()
            self._warn("alarm stream backlog: a committed batch was not evaluated")

    @property
    def idle(self) -> bool:
        return self._queue.empty()

    async def run(self) -> None:
        """Sends what is put and keeps the metric filter fresh, until cancelled."""
        refresh = asyncio.create_task(self._refresh_rules())
        try:
            await self._send()
        finally:
            refresh.cancel()

    async def _send(self) -> None:
        assert self._client is not None
        maxlen = self.settings.alarms.stream_max_len
        queue = self._queue
        while True:
            # What queued up behind a slow XADD goes out in one round trip.
            entries = [await queue.get()]
            while not queue.empty() and len(entries) < CATCH_UP:
                entries.append(queue.get_nowait())
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(self.key, {"p": entry}, maxlen=maxlen, approximate=True)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self.batches.labels("unavailable").inc(len(entries))
                self._warn(f"alarm stream not written (ingest goes on): {exc}")
            else:
                self.batches.labels("sent").inc(len(entries))

    async def _refresh_rules(self) -> None:
        every = self.settings.alarms.rules_refresh_s
        conn: asyncpg.Connection | None = None
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await connect(self.settings.database)
                self._metrics = store.selected_metrics(await store.load_rules(conn))
            except (BridgeError, asyncpg.PostgresError, OSError) as exc:
                self._warn(f"alarm rules not re-read (the last ones stay in use): {exc}")
                conn = None
            await asyncio.sleep(every)

    def _warn(self, message: str) -> None:
        if time.monotonic() - self._logged > 10:
            log.warning("%s", message)
            self._logged = time.monotonic()
