"""One agent: collectors -> spool -> forwarder -> cloud broker, and the status.

    collectors ──put──► Spool (SQLite, WAL) ◄──read / delete after PUBACK── Forwarder ──► broker
                          │
                          └── /healthz, /metrics (Status)

Everything runs on one event loop, except paho's network threads and the
spool's writes (their commits wait for the disk: edge_agent/spool/writer.py).
SIGTERM or SIGINT stops the collectors (a Modbus poll under way is finished and
spooled), forwards what is spooled for up to ``uplink.stop_grace_s``, and
exits 0; whatever was not acknowledged stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping, Sequence

from core.types import Point
from edge_agent.collect import Collector
from edge_agent.collect.local_mqtt import LocalMqtt
from edge_agent.collect.modbus_fleet import ModbusFleet
from edge_agent.collect.simulator import Simulator
from edge_agent.config import Settings
from edge_agent.forward import Forwarder
from edge_agent.spool import Spool
from edge_agent.spool.writer import SpoolWriter, finish
from edge_agent.status import Status
from edge_agent.telemetry import DeviceHealth, Metrics

log = logging.getLogger("edge_agent")

STATUS_LOG_INTERVAL_S = 30.0


class SpoolSink:
    """What collectors hand their readings to: the spool (its writer thread),
    then a word to the forwarder once they are committed."""

    def __init__(self, writer: SpoolWriter, forwarder: Forwarder, metrics: Metrics) -> None:
        self._writer = writer
        self._spool = writer.spool
        self._forwarder = forwarder
        self._metrics = metrics
        self._dropped_logged_at = 0.0

    async def put(
        self, source: str, readings: Sequence[Point], state: Mapping[str, int] | None = None
    ) -> None:
        if not readings and not state:
            return
        appended = self._writer.append(readings, state)
        # Told from the future, so a collector cancelled meanwhile still has its
        # readings forwarded.
        appended.add_done_callback(lambda done: self._committed(source, len(readings), done))
        await finish(appended)

    def _committed(self, source: str, count: int, done: asyncio.Future[tuple[int, int]]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # the collector's put raised it
        first_id, dropped = done.result()
        if count:
            self._metrics.collected.labels(source=source).inc(count)
            self._forwarder.spooled(first_id, count)
        if dropped:
            self._metrics.dropped.inc(dropped)
            now = time.monotonic()
            if now - self._dropped_logged_at > 10:
                self._dropped_logged_at = now
                log.warning(
                    "spool full (%d readings): dropped the %d oldest; %d dropped in all. "
                    "The uplink is down or too slow; raise spool.max_readings to hold longer",
                    self._spool.max_readings,
                    dropped,
                    self._spool.dropped_total,
                )

    def state(self, key: str) -> int | None:
        value = self._spool.get_state(key, -1)
        return None if value == -1 else value


def collectors(
    settings: Settings, simulate: bool, metrics: Metrics, devices: dict[str, DeviceHealth]
) -> list[Collector]:
    out: list[Collector] = []
    if simulate:
        out.append(Simulator(settings.simulator))
    if settings.modbus.devices:
        out.append(ModbusFleet(settings.modbus, metrics, devices))
    if settings.opcua.servers:
        # Imported only when used: asyncua and cryptography are heavy for a gateway.
        from edge_agent.collect.opcua import OpcUaCollector  # noqa: PLC0415

    for server in settings.opcua.servers:
        devices[f"opcua:{server.name}"] = DeviceHealth()
        out.append(OpcUaCollector(server, metrics, devices[f"opcua:{server.name}"]))
    if settings.local_mqtt.enabled:
        out.append(LocalMqtt(settings.local_mqtt, metrics))
    return out


async def run(settings: Settings, simulate: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    metrics = Metrics()
    spool = Spool(settings.spool.path, settings.spool.max_readings, settings.spool.synchronous)
    metrics.dropped.inc(spool.dropped_total)
    log.info(
        "spool %s: %d readings waiting, %d dropped when full so far",
        settings.spool.path,
        spool.depth,
        spool.dropped_total,
    )
    writer = SpoolWriter(spool)
    forwarder = Forwarder(settings.uplink, settings.agent.site_id, writer, metrics)
    devices: dict[str, DeviceHealth] = {}
    sources = collectors(settings, simulate, metrics, devices)
    if not sources:
        log.warning("no collector configured: only the spool's backlog will be forwarded")
    status = Status(spool, forwarder, metrics, devices)
    server = None
    if settings.status.port:
        server = await status.serve(settings.status.host, settings.status.port)
        log.info(
            "status on http://%s:%d/healthz and /metrics",
            settings.status.host,
            settings.status.port,
        )
    sink = SpoolSink(writer, forwarder, metrics)
    collecting_done = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(forwarder.run(collecting_done), name="forwarder")
            status_log = tasks.create_task(status.log_every(STATUS_LOG_INTERVAL_S), name="log")
            collecting = [tasks.create_task(c.run(sink), name=c.name) for c in sources]
            await stop.wait()
            log.info("stopping: collectors first, then forwarding what they spooled")
            for task in collecting:
                task.cancel()
            await asyncio.gather(*collecting, return_exceptions=True)
            collecting_done.set()
            status_log.cancel()
    finally:
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        writer.close()
        log.info("stopped; %d readings stay in the spool for the next start", spool.depth)
        spool.close()
    return 0
