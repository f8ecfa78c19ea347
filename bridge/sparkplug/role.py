"""The Sparkplug role: one worker at a time reads spBv1.0/, the others stand by.

    standby --pg_try_advisory_lock--> leader: load births, subscribe, decode
       ^                                  |
       +---- lock connection lost --------+   (the worker is killed: PostgreSQL
                                               drops its lock at once)

A shared subscription would hand one node's messages round-robin to several
workers, and seq, aliases and births are per node: so the Sparkplug topics
go to one consumer. Whoever holds the PostgreSQL advisory lock ``ROLE_LOCK``
on its own connection is it; every other worker tries again every
``standby_poll_s``. The leader:

  * loads the births kept in PostgreSQL (bridge.sparkplug.store), so DATA is
    decoded at once after a restart or a failover, without a rebirth;
  * connects a session of its own (``<client_id>-sparkplug``, no session kept
    across connections: whatever was queued for a dead leader is gone, the
    next leader starts clean) subscribed to ``spBv1.0/+/+/+`` and
    ``spBv1.0/+/+/+/+`` without $share;
  * routes each message through the Host into its own Intake, whose batches
    join the worker's commit queue: the same commit, dead letters and
    ack-after-commit as every other message (QoS 1 ones: NDEATH wills);
  * writes births and device lifecycle changes on the lock's connection, in
    the order they happened; it checks that connection every
    ``standby_poll_s`` and steps down when it fails;
  * publishes the Host's rebirth commands (NCMD, QoS 0) on its session.

What this guarantees, and what QoS 0 means, is in the README ("Sparkplug B").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiomqtt
import asyncpg
import orjson

from bridge.ack import AckTracker
from bridge.batch import Batch
from bridge.config import Settings
from bridge.db.connect import connect
from bridge.errors import DatabaseError, NotConnected
from bridge.intake import Intake
from bridge.source.session import Session
from bridge.sparkplug import sql
from bridge.sparkplug.host import Host
from bridge.sparkplug.state import Birth, Status
from bridge.sparkplug.store import load_births, save
from bridge.telemetry import Metrics
from core.sparkplug import topic as spt
from core.sparkplug.encode import rebirth_command
from core.tasks import cancel_and_wait

log = logging.getLogger("bridge.sparkplug")

MAX_PENDING_COMMANDS = 1024  # rebirth commands waiting to go out; beyond, counted as failed


class SparkplugRole:
    def __init__(
        self,
        settings: Settings,
        client_id: str,
        metrics: Metrics,
        enqueue: Callable[[Batch], None],
    ) -> None:
        """``enqueue``: where the role's closed batches go (the worker's
        commit queue); the worker settles them back with ``intake.settle``."""
        self.settings = settings
        self.metrics = metrics
        self.leading = False
        self._changes: asyncio.Queue[Birth | Status] = asyncio.Queue()
        self._commands: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(MAX_PENDING_COMMANDS)
        self.host = Host(
            settings.sparkplug,
            settings.limits,
            on_rebirth=self._rebirth,
            on_store=self._changes.put_nowait,
            count_rebirth=self._count_rebirth,
            count_stale_death=metrics.sparkplug_stale_deaths.inc,
        )
        self.tracker = AckTracker()
        self.intake = Intake(
            self.host,
            self.tracker,
            metrics,
            enqueue,
            max_points=settings.batch.max_points,
            max_delay_s=settings.batch.max_delay_ms / 1000,
        )
        # No session kept across connections: a dead leader's queue is not
        # the next leader's (README, "Sparkplug B").
        mqtt = settings.mqtt.model_copy(update={"session_expiry_s": 0})
        self._host_id = settings.sparkplug.primary_host_id
        self._state_ms = 0  # the timestamp of this connection's STATE, birth and will
        self._state_task: asyncio.Task[None] | None = None
        self._state_online = False  # STATE online published on the current connection
        self.session = Session(
            mqtt,
            f"{client_id}-sparkplug",
            list(spt.FILTERS),
            self.intake.on_message,
            on_connection=self.tracker.new_connection,
            on_state=self._subscribed,
            will=self._state_will if self._host_id else None,
        )

    # ------------------------------------------------------------ the role
    async def run(self, stop: asyncio.Event) -> None:
        """Stands by, leads while it holds the lock, stands by again when the
        lock's connection fails; returns once ``stop`` is set. Every loop here
        ends on ``stop`` rather than on being cancelled: Python 3.11's
        asyncio.wait_for can swallow a cancellation that comes as the awaited
        event is set, which left a worker waiting for ever on its way out."""
        poll = self.settings.sparkplug.standby_poll_s
        while not stop.is_set():
            try:
                conn = await connect(self.settings.database)
            except DatabaseError as exc:
                log.warning("Sparkplug role: %s", exc)
                await _wait(stop, poll)
                continue
            try:
                if await self._take(conn, stop):
                    await self._lead(conn, stop)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("Sparkplug role: database connection lost (%s); standing by", exc)
            finally:
                self._step_down()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            await _wait(stop, poll)

    async def _take(self, conn: asyncpg.Connection, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            if await conn.fetchval(sql.TAKE_ROLE, sql.ROLE_LOCK):
                return True
            await _wait(stop, self.settings.sparkplug.standby_poll_s)
        return False

    async def _lead(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        births = await load_births(conn)
        self.host.load(births)
        self.leading = True
        log.info("holding the Sparkplug role; %d birth(s) loaded", len(births))
        lead_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.session.run(lead_stop), name="sparkplug-mqtt"),
            asyncio.create_task(self._publish_commands(), name="sparkplug-commands"),
        ]
        try:
            await self._write_changes(conn, stop, tasks)
        finally:
            lead_stop.set()  # the session ends on it (see run); the others are cancelled
            await cancel_and_wait(tasks[1:])
            await asyncio.gather(tasks[0], return_exceptions=True)
            if not stop.is_set():  # stepping down: let the next leader have the topics
                if self._state_online:
                    await self._publish_state(online=False)
                await self.session.close(end_session=True)

    def _subscribed(self, connected: bool) -> None:
        """The role shows once its session is subscribed: from then on,
        Sparkplug messages are read. A primary host then says it is online."""
        self.metrics.sparkplug_role.set(int(connected and self.leading))
        if connected and self._host_id:
            self._state_task = asyncio.create_task(self._publish_state(online=True))

    # ------------------------------------------------------------ primary host
    def _state(self, online: bool) -> bytes:
        return orjson.dumps({"online": online, "timestamp": self._state_ms})

    def _state_will(self) -> aiomqtt.Will:
        """STATE offline, with the timestamp its birth on this connection will carry."""
        assert self._host_id is not None
        self._state_ms = time.time_ns() // 1_000_000
        return aiomqtt.Will(spt.state_topic(self._host_id), self._state(False), 1, True)

    async def _publish_state(self, online: bool) -> None:
        assert self._host_id is not None
        try:
            await self.session.publish(spt.state_topic(self._host_id), self._state(online), 1, True)
            self._state_online = online
        except NotConnected as exc:
            log.warning("Sparkplug STATE (online=%s) not published: %s", online, exc)

    def _step_down(self) -> None:
        if self.leading:
            log.warning("gave up the Sparkplug role")
        self.leading = False
        self.metrics.sparkplug_role.set(0)

    async def _write_changes(
        self, conn: asyncpg.Connection, stop: asyncio.Event, tasks: list[asyncio.Task[None]]
    ) -> None:
        """Writes births and lifecycle changes in order; checks the lock's
        connection when idle. Returns on ``stop`` with nothing left to write."""
        poll = self.settings.sparkplug.standby_poll_s
        while not (stop.is_set() and self._changes.empty()):
            for task in tasks:
                if task.done():
                    raise RuntimeError(f"task {task.get_name()} ended: {task.exception()!r}")
            try:
                change = await asyncio.wait_for(self._changes.get(), poll)
            except TimeoutError:
                await conn.fetchval("SELECT 1")  # raises when the connection is gone
                continue
            await save(conn, change)

    async def close(self) -> None:
        """After the worker committed and acked what the role took: ends its
        session (a primary host says it is offline first: a clean disconnect
        sends no will)."""
        if self._state_online:
            await self._publish_state(online=False)
        await self.session.close(end_session=True)
        self.host.close()

    def pause_reading(self) -> None:
        self.session.pause_reading()

    def resume_reading(self) -> None:
        self.session.resume_reading()

    # ------------------------------------------------------------ rebirths
    def _count_rebirth(self, reason: str, sent: bool) -> None:
        self.metrics.sparkplug_rebirths.labels(reason, "requested" if sent else "suppressed").inc()

    def _rebirth(self, group: str, node: str, reason: str) -> None:
        try:
            self._commands.put_nowait((group, node, reason))
        except asyncio.QueueFull:
            self.metrics.sparkplug_rebirths.labels(reason, "failed").inc()

    async def _publish_commands(self) -> None:
        while True:
            group, node, reason = await self._commands.get()
            topic = spt.command_topic(group, node)
            try:
                await self.session.publish(topic, rebirth_command(time.time_ns() // 1_000_000), 0)
            except NotConnected as exc:
                self.metrics.sparkplug_rebirths.labels(reason, "failed").inc()
                log.warning("rebirth request to %s/%s not sent: %s", group, node, exc)
            else:
                log.info("rebirth requested from %s/%s (%s)", group, node, reason)


async def _wait(stop: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
