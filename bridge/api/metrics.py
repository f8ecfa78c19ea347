"""The API's Prometheus metrics, in a registry of its own.

``http_request_duration_seconds``, ``cache_hits_total`` and
``cache_requests_total`` are the names the seed's monitoring queries use.
HTTP ingest's commits are counted under the same names as a bridge
worker's (``commit``: bridge.telemetry.CommitMetrics). The request histogram
and counter are kept by the ``timing`` middleware.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

from bridge.telemetry import CommitMetrics, ProcessMetrics

API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessMetrics(r)
        self.commit = CommitMetrics(r)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, by route template and method",
            ["route", "method"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "http_requests_total",
            "Requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.cache_requests = Counter(
            "cache_requests_total",
            "Series reads whose range reaches into the Redis window",
            registry=r,
        )
        self.cache_hits = Counter(
            "cache_hits_total", "Series reads served (in part) from Redis", registry=r
        )
        self.cache_unavailable = Counter(
            "api_cache_unavailable_total",
            "Reads that fell back to the database because Redis did not answer",
            registry=r,
        )
        self.points_submitted = Counter(
            "api_points_submitted_total",
            "Points accepted through HTTP ingest: committed, or accepted by the broker",
            registry=r,
        )
        self.points_published = Counter(
            "api_points_published_total",
            "Points of HTTP ingest accepted by the broker (api.ingest_via = broker)",
            registry=r,
        )
        self.broker_fallbacks = Counter(
            "api_broker_fallbacks_total",
            "Points of HTTP ingest committed directly because the broker did not accept "
            "them, by reason",
            ["reason"],
            registry=r,
        )
        self.points_rejected = Counter(
            "api_points_rejected_total",
            "Points of refused HTTP ingest requests, by reason",
            ["reason"],
            registry=r,
        )


def timing(metrics: ApiMetrics) -> Any:
    """ASGI middleware: the request histogram and counter, by route template."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                metrics.duration.labels(route, method).observe(time.perf_counter() - started)
                metrics.requests.labels(route, method, str(status)).inc()

        return timed

    return middleware
