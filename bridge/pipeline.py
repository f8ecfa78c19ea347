"""One bridge worker: the stages wired together, and their lifecycle.

    Session --on_message--> Intake (Router -> Batcher) --queue--> Committer x pool_size
        ^                                                              |  commit
        +---------------- AckTracker (arrival order) <-- settle -------+
                                                                       +--> Redis (best effort)
                                                                       +--> after_commit: receipts to
                                                                            edge agents (bridge.receipts)

Each stage keeps its own contract (bridge.intake, bridge.commit, bridge.ack);
the worker only connects them and runs them: the session (bridge.source)
reconnects to the broker with capped, jittered backoff; the committer retries a batch on any transient
database error for as long as it takes; no message is acked before its points
are committed (or dead-lettered); at most Receive Maximum messages are
unacked, and at batch.max_queued closed batches the worker stops reading the
broker (QoS 0 too), so memory stays bounded while the database is slow or
down (the rest waits at the broker).

Worker 0 also reads the broker's $SYS counters on a connection of its own
(bridge.broker_sys, ``mqtt.export_sys``).

Shutdown (SIGTERM/SIGINT): stop taking messages (later ones stay unacked and
are redelivered to this session), flush, commit, publish the last receipts,
ack, disconnect keeping the session. A second signal exits at once; nothing acked is lost either way.
Retire (``bridge retire``): take over the session, unsubscribe, drain what the
broker queued for it, commit, ack, then end the session for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from bridge.ack import AckTracker
from bridge.batch import Batch
from bridge.broker_sys import SysExporter
from bridge.cache.feed import CacheFeed
from bridge.cache.writer import CacheWriter
from bridge.commit import CommitResult, Committer
from bridge.config import Settings
from bridge.db.maintain import maintain_every
from bridge.errors import RedisUnavailable
from bridge.health import WorkerHealth
from bridge.intake import Intake
from bridge.receipts import Receipter
from bridge.router import Router
from bridge.sink.timescale import TimescaleSink
from bridge.source.session import Session
from bridge.source.wire import READ_CHUNK
from bridge.sparkplug.role import SparkplugRole
from bridge.telemetry import Metrics
from core import http
from core.tasks import cancel_and_wait

log = logging.getLogger("bridge.pipeline")


def worker_client_id(settings: Settings, index: int) -> str:
    return f"{settings.mqtt.client_id}-{index}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        index: int = 0,
        metrics: Metrics | None = None,
        http_port: int | None = None,
    ) -> None:
        """``http_port``: where /healthz, /readyz and /metrics listen; by default
        http.port + index (a host running several workers), 0 when http.port is 0."""
        self.settings = settings
        self.index = index
        self.http_port = (
            http_port
            if http_port is not None
            else settings.http.port and settings.http.port + index
        )
        self.client_id = worker_client_id(settings, index)
        self.metrics = metrics or Metrics()
        self.router = Router(settings.mqtt.routes, settings.limits)
        self.filters = [f"$share/{settings.mqtt.group}/{f}" for f in self.router.filters]
        self.tracker = AckTracker()
        # Closed batches waiting for a writer; None tells one writer to end.
        self.batches: asyncio.Queue[Batch | None] = asyncio.Queue()
        self.intake = Intake(
            self.router,
            self.tracker,
            self.metrics,
            self._enqueue,
            max_points=settings.batch.max_points,
            max_delay_s=settings.batch.max_delay_ms / 1000,
        )
        self._max_queued = settings.batch.max_queued  # then reads pause: backpressure
        self._busy_in_flight = settings.mqtt.receive_maximum // 2
        self.session = Session(
            settings.mqtt,
            self.client_id,
            self.filters,
            self.intake.on_message,
            on_connection=self.tracker.new_connection,
            on_state=self._mqtt_state,
            on_reconnect=self.metrics.mqtt_reconnects.inc,
            on_fault=lambda kind: self.metrics.mqtt_faults.labels(kind).inc(),
            on_origin=self.intake.on_origin,
        )
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self.health = WorkerHealth(
            index, self.client_id, self.metrics, self._connected.is_set, self.intake.count_received
        )
        # Called with each batch once committed, before its acks: what acts on
        # committed data (receipts, alarms) hangs here. Must not block.
        self.after_commit: list[Callable[[Batch, CommitResult], None]] = []
        self.receipter: Receipter | None = None
        if settings.receipts.enabled:
            self.receipter = Receipter(settings.receipts, self.session, self.metrics)
            self.after_commit.append(self.receipter.committed)
        self._feed: CacheFeed | None = None  # set once the cache is open
        self._cache_logged = 0.0
        # The Sparkplug role (bridge.sparkplug.role), when on: its batches join
        # the same queue and are settled back to its own intake.
        self.sparkplug: SparkplugRole | None = None
        self._sparkplug_batches: set[int] = set()  # id() of its batches not yet settled
        if settings.sparkplug.enabled:
            self.sparkplug = SparkplugRole(
                settings, self.client_id, self.metrics, self._enqueue_sparkplug
            )
        self.metrics.inflight_messages.set_function(lambda: self.tracker.in_flight)
        self.metrics.queued_batches.set_function(self.batches.qsize)
        self.metrics.mqtt_unread_bytes.set_function(self._unread)

    def _behind(self, committer: Committer) -> bool:
        """Data waits for this worker: batches wait for a writer, the last
        batch a writer took had others behind it, more than half of the
        broker's window of unacked messages is in here, or more than a read's
        worth of it waits in the socket. The last two say that the broker has
        more for us than we take; the socket's is the one that sees a worker
        whose own loop is the bottleneck (most of the window then waits
        unread, not inside). The cache then writes less (bridge.cache.feed)."""
        return (
            self.batches.qsize() > 0
            or committer.backlogged
            or self.tracker.in_flight > self._busy_in_flight
            or self._unread() > READ_CHUNK
        )

    def _unread(self) -> int:
        """Bytes unread in this worker's sockets: its own, and the Sparkplug
        role's, whose batches share the worker's loop and commit queue."""
        unread = self.session.unread
        if self.sparkplug is not None:
            unread += self.sparkplug.session.unread
        return unread

    def _enqueue(self, batch: Batch) -> None:
        self.batches.put_nowait(batch)
        if self.batches.qsize() >= self._max_queued:
            self.session.pause_reading()
            if self.sparkplug is not None:
                self.sparkplug.pause_reading()

    def _enqueue_sparkplug(self, batch: Batch) -> None:
        self._sparkplug_batches.add(id(batch))
        self._enqueue(batch)

    def _settle(self, batch: Batch, result: CommitResult) -> None:
        for hook in self.after_commit:
            hook(batch, result)
        if self.sparkplug is not None and id(batch) in self._sparkplug_batches:
            self._sparkplug_batches.discard(id(batch))
            self.sparkplug.intake.settle(batch)
        else:
            self.intake.settle(batch)
        if self.batches.qsize() < self._max_queued:
            self.session.resume_reading()
            if self.sparkplug is not None:
                self.sparkplug.resume_reading()

    def _cache_written(self, seconds: float) -> None:
        self.metrics.redis_writes.inc()
        self.metrics.redis_write_seconds.inc(seconds)

    def _cache_missed(self, reason: str, exc: RedisUnavailable | None) -> None:
        self.metrics.redis_errors.labels(reason).inc()
        if exc is not None and time.monotonic() - self._cache_logged > 10:
            log.warning("cache not updated (database ingest goes on): %s", exc)
            self._cache_logged = time.monotonic()

    # ------------------------------------------------------------ MQTT
    async def _mqtt(self, retire: bool) -> None:
        await self.session.run(self._stop, retire)

    def _mqtt_state(self, connected: bool) -> None:
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        self.metrics.mqtt_connected.set(int(connected))

    # ------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Begins a graceful stop (idempotent)."""
        self._stop.set()

    async def run(self, retire: bool = False, idle_s: float = 1.0) -> None:
        """Runs until stop() (or, retiring, until the session is drained)."""
        with _fewer_gc_passes():
            await self._run(retire, idle_s)

    async def _run(self, retire: bool, idle_s: float) -> None:
        s = self.settings
        server = None
        if self.http_port:
            port = self.http_port
            server = await http.serve(s.http.host, port, self.health.routes())
            log.info(
                "health and metrics on http://%s:%d/ (healthz, readyz, metrics)", s.http.host, port
            )
        async with (
            TimescaleSink(s.database) as db,
            CacheWriter(
                s.redis.url,
                window_s=s.redis.window_s,
                prefix=s.redis.prefix,
                timeout_s=s.redis.timeout_s,
                future_skew_s=s.limits.max_future_skew_s,
            ) as cache,
        ):
            self._feed = CacheFeed(
                cache,
                s.redis.max_pending_batches,
                self._cache_written,
                self._cache_missed,
                interval_s=s.redis.write_interval_ms / 1000,
                backlog=lambda: self._behind(committer),
                window_in_backlog=s.redis.window_in_backlog,
                backlog_share=s.redis.backlog_share,
            )
            committer = Committer(
                db,
                self.metrics,
                cache=self._feed.put if s.redis.enabled else None,
                max_merged_points=s.batch.max_merged_points,
            )
            self.health.committer, self.health.sink = committer, db
            tasks = [
                asyncio.create_task(committer.drain(self.batches, self._settle), name=f"writer-{i}")
                for i in range(s.database.pool_size)
            ]
            tasks.append(asyncio.create_task(self._feed.run(), name="redis"))
            if self.index == 0 and not retire and s.database.maintain_interval_s > 0:
                tasks.append(asyncio.create_task(maintain_every(s.database), name="maintain"))
            if self.index == 0 and not retire and s.mqtt.export_sys:
                exporter = SysExporter(s.mqtt, f"{self.client_id}-sys", self.metrics)
                tasks.append(asyncio.create_task(exporter.run(), name="broker-sys"))
            if self.receipter is not None:
                tasks.append(asyncio.create_task(self.receipter.run(), name="receipts"))
            mqtt = asyncio.create_task(self._mqtt(retire), name="mqtt")
            tasks.append(mqtt)
            sparkplug = None
            if self.sparkplug is not None and not retire:
                sparkplug = asyncio.create_task(self.sparkplug.run(self._stop), name="sparkplug")
                tasks.append(sparkplug)
            main = asyncio.create_task(
                self._drain_session(idle_s) if retire else self._stop.wait(), name="main"
            )
            try:
                # Background tasks never end on their own; if one does, it is a
                # bug: stop the worker (nothing unacked is lost) so that the
                # supervisor or the service manager starts a fresh one.
                await asyncio.wait([main, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    if task.done():
                        error = task.exception() if not task.cancelled() else None
                        if error is None and task is sparkplug and self._stop.is_set():
                            continue  # the Sparkplug role ends on stop, by design
                        raise RuntimeError(f"task {task.get_name()} ended: {error!r}")
                await self._finish(end_session=retire)
            finally:
                await cancel_and_wait([main, *tasks])
                if server is not None:
                    server.close()

    async def _drain_session(self, idle_s: float) -> None:
        """Waits until the broker has handed over everything it queued for us."""
        intake = self.intake
        while not self._stop.is_set():
            await _wait(self._connected.wait(), 1.0)
            quiet = time.monotonic() - intake.last_message
            if self._connected.is_set() and intake.idle.is_set() and quiet >= idle_s:
                return
            await asyncio.sleep(0.05)

    async def _finish(self, end_session: bool) -> None:
        """Stops taking, commits and acks what was taken, then disconnects."""
        intakes = [self.intake]
        if self.sparkplug is not None:
            intakes.append(self.sparkplug.intake)
        for intake in intakes:
            intake.stop_taking()
        grace = self.settings.shutdown.grace_s
        try:
            await asyncio.wait_for(
                asyncio.gather(*(intake.idle.wait() for intake in intakes)), timeout=grace
            )
        except TimeoutError:
            log.error(
                "shutdown grace (%.0fs) ran out with %d message(s) unsettled; they stay "
                "unacked and the broker redelivers them",
                grace,
                self.intake.unsettled,
            )
        for _ in range(self.settings.database.pool_size):
            self.batches.put_nowait(None)
        if self.receipter is not None:
            # The last receipts, briefly: what is not receipted is published again.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.receipter.flush(), timeout=min(5.0, grace))
        # Let the last cache updates go out, briefly; the cache is best effort.
        deadline = time.monotonic() + min(2.0, grace)
        while self._feed is not None and not self._feed.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.sparkplug is not None:
            await self.sparkplug.close()
        await self.session.close(end_session=end_session)
        log.info("stopped%s", "; session ended" if end_session else "")


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raises the cyclic GC's first threshold while the worker runs.

    Decoding allocates a tuple per point and a dict per reading, and with the
    default threshold (a pass every 700 allocations) the collector took about
    half of the decode time of 100-reading messages (1.24 -> 0.68 µs per
    point at 50,000, micro-benchmark). Points hold no reference cycles, and
    the memory bound is Receive Maximum, not the collector.
    """
    saved = gc.get_threshold()
    gc.set_threshold(50_000, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


async def _wait(aw: Awaitable[object], timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(aw, timeout)
