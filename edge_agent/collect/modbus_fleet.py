"""Polling hundreds of PLCs on time: one schedule, staggered, bounded concurrency.

``ModbusFleet`` is the collector of every ``[[modbus.devices]]`` entry. Each
device keeps its own task and its own connection (``ModbusPoller``: the
register map read in coalesced blocks, the readings of a poll spooled in one
transaction), so a device only ever waits on its own socket. On top of that:

- **Schedule.** A device's k-th poll is due at ``phase + k * interval``. With
  ``modbus.stagger`` (the default) the phases spread the devices evenly over
  their interval, so 200 devices at 1 Hz make a request every 5 ms rather
  than 200 at once. A poll that takes longer than the interval skips the
  slots it missed (each counted in ``edge_poll_overruns_total{device}``) and
  the device stays on its grid: polls never bunch up.
- **Bounded concurrency.** A poll holds one of ``modbus.max_concurrent`` slots
  while its requests are in flight. A device that failed retries, on its
  backoff, in a pool of its own (a quarter of ``max_concurrent``, at least
  one) until it answers again, so however many devices are dead or silent
  they never take a slot from one that answers; a device holds at most one
  slot at a time. The one exception is a device's first failure (at start,
  or when it stops answering): that poll held a live slot for up to its
  timeout, so when more devices than ``max_concurrent`` die at once, the
  others' polls can be late once, by up to one timeout.
- **Jitter.** How late each scheduled poll started, its wait for a slot
  included, goes to ``edge_poll_jitter_seconds{collector="modbus"}``; a
  device's first poll (it connects) and its retries are not scheduled polls
  and are not measured.
- **Requests per poll.** ``edge_modbus_requests_per_poll{device}`` (how many
  requests the coalesced map takes), with ``edge_modbus_requests_total`` and
  ``edge_modbus_polls_total`` counting what was sent.
- **Group commit.** The polls that end within ``modbus.commit_interval_s``
  (0.25 s) of each other are spooled in one transaction (source "modbus"),
  not one each: a commit waits for the disk (fsync, on the spool's writer
  thread, so the polls go on meanwhile), and 200 devices at 1 Hz would ask
  for 200 fsyncs a second. Profiled on the busy shared 2-core test machine
  when commits still ran on the event loop, one commit a poll kept the loop
  in SQLite for 13 of 20 s. The cost: a power cut or ``kill -9`` can lose the
  polls of the last ``commit_interval_s``, as if they had been missed. 0
  spools each batch of polls as soon as the previous commit is done.

Stopping finishes the polls under way (bounded by their timeout) and spools
what they read, as a single device's poller does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from pymodbus.exceptions import ModbusException

from core.types import Point
from edge_agent.collect import Sink
from edge_agent.collect.modbus import DeviceError, ModbusPoller
from edge_agent.config import ModbusDevice, ModbusSettings
from edge_agent.telemetry import DeviceHealth, Metrics

PROBE_SHARE = 4  # devices that are down retry within max_concurrent // PROBE_SHARE slots


class ScheduledPoller(ModbusPoller):
    """One device on the fleet's schedule."""

    def __init__(
        self,
        device: ModbusDevice,
        metrics: Metrics,
        health: DeviceHealth,
        *,
        phase_s: float,
        live: asyncio.Semaphore,
        probe: asyncio.Semaphore,
        spool: Callable[[list[Point]], None],
    ) -> None:
        super().__init__(device, metrics, health)
        self._spool = spool
        self._in_flight = False  # a poll holds a slot and talks to the device
        self._phase_s = phase_s
        self._live = live
        self._probe = probe
        self.requests_per_poll = len(self._blocks)
        metrics.modbus_requests_per_poll.labels(device=device.device_id).set(self.requests_per_poll)

    async def run(self, sink: Sink) -> None:
        device, metrics = self._device, self._metrics
        interval = device.poll_interval_s
        label = device.device_id
        metrics.device_up.labels(device=label).set(0)
        jitter = metrics.poll_jitter.labels(collector="modbus")
        overruns = metrics.poll_overruns.labels(device=label)
        polls = metrics.modbus_polls.labels(device=label)
        requests = metrics.modbus_requests.labels(device=label)
        origin = time.monotonic() + self._phase_s
        due = origin
        failing = False  # since a failure, until the device answers again
        measured = False  # the first poll (connecting) and retries are not scheduled polls
        backoff = interval
        try:
            while True:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                slots = self._probe if failing else self._live
                poll = asyncio.ensure_future(self._slotted(slots))
                try:
                    started, readings = await asyncio.shield(poll)
                except asyncio.CancelledError:
                    await self._finish(poll)
                    raise
                except (DeviceError, ModbusException, OSError, TimeoutError) as exc:
                    self._client.close()
                    self._failed(self._reason(exc), backoff)
                    failing, measured = True, False
                    due = time.monotonic() + backoff
                    backoff = min(backoff * 2, device.backoff_max_s)
                    continue
                if measured:
                    jitter.observe(max(0.0, started - due))
                self._spool(readings)
                polls.inc()
                requests.inc(self.requests_per_poll)
                self._answered()
                now = time.monotonic()
                if not measured:
                    # (Back) on the grid: the next slot from now.
                    failing, measured, backoff = False, True, interval
                    due = origin + math.ceil((now - origin) / interval) * interval
                    continue
                due += interval
                if due < now:
                    missed = math.ceil((now - due) / interval)
                    overruns.inc(missed)
                    due += missed * interval
        finally:
            self._client.close()

    async def _finish(self, poll: asyncio.Future[tuple[float, list[Point]]]) -> None:
        """Stopping: the poll under way is finished (bounded by the request
        timeout), and what the device served is spooled; one still waiting
        for a slot is dropped."""
        if not self._in_flight:
            poll.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            self._spool((await poll)[1])

    async def _slotted(self, slots: asyncio.Semaphore) -> tuple[float, list[Point]]:
        async with slots:
            started = time.monotonic()
            self._in_flight = True
            try:
                return started, await self._poll()
            finally:
                self._in_flight = False


class GroupCommit:
    """Readings of many polls, spooled together at most every ``interval_s``;
    with 0, whatever ended while the previous commit waited for the disk."""

    def __init__(self, interval_s: float, metrics: Metrics) -> None:
        self._interval_s = interval_s
        self._seconds = metrics.modbus_commit_seconds
        self._pending: list[Point] = []
        self._wake = asyncio.Event()

    def add(self, readings: list[Point]) -> None:
        self._pending.extend(readings)
        self._wake.set()

    async def flush(self, sink: Sink) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            started = time.perf_counter()
            await sink.put(ModbusFleet.name, pending)
            self._seconds.observe(time.perf_counter() - started)

    async def run(self, sink: Sink) -> None:
        while True:
            await self._wake.wait()
            if self._interval_s > 0:
                await asyncio.sleep(self._interval_s)  # what else ends meanwhile joins
            self._wake.clear()
            await self.flush(sink)


class ModbusFleet:
    name = "modbus"

    def __init__(
        self, settings: ModbusSettings, metrics: Metrics, devices: dict[str, DeviceHealth]
    ) -> None:
        self._commit = GroupCommit(settings.commit_interval_s, metrics)
        live = asyncio.Semaphore(settings.max_concurrent)
        probe = asyncio.Semaphore(max(1, settings.max_concurrent // PROBE_SHARE))
        count = len(settings.devices)
        self.pollers: list[ScheduledPoller] = []
        for i, device in enumerate(settings.devices):
            devices[device.device_id] = DeviceHealth()
            phase = device.poll_interval_s * i / count if settings.stagger else 0.0
            self.pollers.append(
                ScheduledPoller(
                    device,
                    metrics,
                    devices[device.device_id],
                    phase_s=phase,
                    live=live,
                    probe=probe,
                    spool=self._commit.add,
                )
            )

    async def run(self, sink: Sink) -> None:
        committer = asyncio.create_task(self._commit.run(sink), name="modbus-commit")
        try:
            async with asyncio.TaskGroup() as tasks:
                for poller in self.pollers:
                    tasks.create_task(poller.run(sink), name=poller.name)
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            await self._commit.flush(sink)  # what the last polls read
