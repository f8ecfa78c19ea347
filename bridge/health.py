"""A worker's operational endpoints: /healthz, /readyz and /metrics, served by
core.http on ``http.port + worker index``.

  * /healthz: 200 while the process runs (liveness), with its identity.
  * /readyz: 200 only when the worker is subscribed to the broker and the
    database takes writes (the last commit went in, or it answers a ping);
    503 otherwise, with each check's outcome.
  * /metrics: the worker's Prometheus registry; the per-message counts kept
    in plain ints by the intake are added before each scrape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.commit import Committer
from bridge.sink.timescale import TimescaleSink
from bridge.telemetry import Metrics
from core import http


class WorkerHealth:
    """The handlers. ``committer`` and ``sink`` are set once the database
    side is open; until then the worker is alive and not ready."""

    def __init__(
        self,
        index: int,
        client_id: str,
        metrics: Metrics,
        connected: Callable[[], bool],
        before_scrape: Callable[[], None],
    ) -> None:
        self._index = index
        self._client_id = client_id
        self._metrics = metrics
        self._connected = connected
        self._before_scrape = before_scrape
        self.committer: Committer | None = None
        self.sink: TimescaleSink | None = None

    def routes(self) -> dict[str, http.Handler]:
        return {"/healthz": self.health, "/readyz": self.ready, "/metrics": self.scrape}

    async def health(self) -> http.Response:
        body = {
            "status": "ok",
            "worker": self._index,
            "pid": os.getpid(),
            "client_id": self._client_id,
        }
        return 200, "application/json", json.dumps(body).encode()

    async def ready(self) -> http.Response:
        checks = {
            "mqtt": self._connected(),
            "database": self.committer is not None and await self.committer.ready(),
        }
        status = 200 if all(checks.values()) else 503
        return status, "application/json", json.dumps({"ready": status == 200, **checks}).encode()

    async def scrape(self) -> http.Response:
        self._before_scrape()
        if self.sink is not None:
            used, idle = self.sink.pool_stats()
            self._metrics.db_pool_connections.labels("used").set(used)
            self._metrics.db_pool_connections.labels("idle").set(idle)
        return 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
