"""The local status endpoint and the operator's periodic log line.

    GET /healthz   200 and JSON: uplink, spool (depth, oldest unsent reading's
                   age, dropped when full), commit receipts (on or not, messages
                   and readings waiting for one, the oldest's wait, sequences
                   ignored), publish rate, each device's state
    GET /metrics   Prometheus text (edge_agent.telemetry)

/healthz answers 200 whenever the agent runs (it is a liveness check);
``problems`` lists what needs an operator: uplink down, readings dropped,
devices not answering.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import orjson
from prometheus_client import generate_latest

from core.http import Response, serve
from edge_agent.forward import Forwarder
from edge_agent.spool import Spool
from edge_agent.telemetry import DeviceHealth, Metrics

log = logging.getLogger("edge_agent.status")


class Status:
    def __init__(
        self,
        spool: Spool,
        forwarder: Forwarder,
        metrics: Metrics,
        devices: dict[str, DeviceHealth],
    ) -> None:
        self._spool = spool
        self._forwarder = forwarder
        self._metrics = metrics
        self._devices = devices

    def refresh(self) -> dict[str, Any]:
        """Updates the gauges and returns the health document."""
        spool, metrics = self._spool, self._metrics
        oldest = spool.oldest_time_us()
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1e6)
        rate = self._forwarder.rate.per_second()
        size = spool.file_bytes()
        metrics.spool_readings.set(spool.depth)
        metrics.spool_oldest_age.set(age)
        metrics.spool_bytes.set(size)
        metrics.publish_rate.set(rate)
        forwarder = self._forwarder
        waiting = forwarder.waiting
        waited = waiting.oldest_wait_s()
        metrics.waiting_messages.set(waiting.messages)
        metrics.waiting_points.set(waiting.readings)
        metrics.waiting_oldest.set(waited)
        problems = []
        if waited > forwarder.receipt_timeout_s:
            problems.append(
                f"{waiting.readings} readings wait for their commit receipt, the oldest for "
                f"{waited:.0f} s: the bridge is stopped or slow, or sends no receipts (an old "
                "bridge: set uplink.receipts = off)"
            )
        if not self._forwarder.connected:
            why = self._forwarder.uplink_error
            problems.append(f"uplink down{f' ({why})' if why else ''}: readings wait in the spool")
        if spool.dropped_total:
            problems.append(f"spool was full: {spool.dropped_total} oldest readings dropped")
        down = sorted(name for name, d in self._devices.items() if not d.up)
        if down:
            problems.append(f"devices not answering: {', '.join(down)}")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "pid": os.getpid(),
            "uplink": {
                "connected": self._forwarder.connected,
                "error": self._forwarder.uplink_error,
                "inflight_messages": self._forwarder.unanswered,
            },
            "spool": {
                "readings": spool.depth,
                "max_readings": spool.max_readings,
                "oldest_unsent_age_s": round(age, 3),
                "dropped_total": spool.dropped_total,
                "bytes": size,
            },
            "receipts": {
                "on": forwarder.receipts_on,
                "epoch": waiting.epoch,
                "waiting_messages": waiting.messages,
                "waiting_readings": waiting.readings,
                "oldest_wait_s": round(waited, 3),
                "ignored_sequences": dict(waiting.ignored),
            },
            "publish_readings_per_s": round(rate, 1),
            "devices": {
                name: {
                    "up": d.up,
                    "errors": d.errors,
                    "last_error": d.last_error,
                    "last_ok_at": d.last_ok_at,
                }
                for name, d in sorted(self._devices.items())
            },
        }

    async def serve(self, host: str, port: int) -> asyncio.Server:
        async def healthz() -> Response:
            return 200, "application/json", orjson.dumps(self.refresh(), option=orjson.OPT_INDENT_2)

        async def metrics() -> Response:
            self.refresh()
            return 200, "text/plain; version=0.0.4", generate_latest(self._metrics.registry)

        return await serve(host, port, {"/healthz": healthz, "/metrics": metrics})

    async def log_every(self, interval_s: float) -> None:
        """One line every ``interval_s`` that tells an operator how things stand."""
        while True:
            await asyncio.sleep(interval_s)
            h = self.refresh()
            spool = h["spool"]
            log.info(
                "uplink %s, spool %d readings (oldest %.0f s), %.0f readings/s published, "
                "%d dropped when full%s",
                "up" if h["uplink"]["connected"] else "DOWN",
                spool["readings"],
                spool["oldest_unsent_age_s"],
                h["publish_readings_per_s"],
                spool["dropped_total"],
                "".join(f"; {p}" for p in h["problems"] if p.startswith("devices")),
            )
