"""Every metric the bridge exports, and its log setup, in one place.

Names follow Prometheus conventions. ``telemetry_points_total`` is the name the
seed's dashboards and queries use for committed points. A dropped point or
message always records its reason; work that will be retried is never counted
as dropped.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The *_created series double the exposition and no dashboard of ours uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 750, 1000, 1500, 2500, 5000, 10000)


class ProcessMetrics(Collector):
    """``process_resident_memory_bytes`` (what `bridge doctor` compares with the
    memory limit) and ``process_cpu_seconds_total``, computed at each scrape.

    prometheus_client's ProcessCollector opens /proc/self/stat, /proc/self/limits
    and lists /proc/self/fd on every scrape: about 170 us, which doubled a
    scrape of a worker's registry (bench_ingest polls /metrics 20-100 times a
    second). This reads one small file, /proc/self/statm, and os.times()."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        try:
            with open("/proc/self/statm", "rb") as f:
                resident_pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            pass  # not Linux: no memory figure, the doctor says it is unknown
        else:
            yield GaugeMetricFamily(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                value=resident_pages * self._page,
            )
        times = os.times()
        yield CounterMetricFamily(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            value=times.user + times.system,
        )


class CommitMetrics:
    """What the committer (bridge.commit) counts, registered in ``registry``:
    the same names in a worker's metrics and in the API's (HTTP ingest)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.points_written = Counter(
            "telemetry_points_total", "Points committed to the database (new rows)", registry=r
        )
        self.points_duplicate = Counter(
            "bridge_points_duplicate_total",
            "Points already in the database (redeliveries, republished data), stored once",
            registry=r,
        )
        self.texts_written = Counter(
            "telemetry_text_values_total",
            "String values committed to telemetry_text (new rows)",
            registry=r,
        )
        self.texts_duplicate = Counter(
            "bridge_text_values_duplicate_total",
            "String values already in telemetry_text (redeliveries), stored once",
            registry=r,
        )
        self.points_rejected = Counter(
            "bridge_points_rejected_total",
            "Points dead-lettered, by reason",
            ["reason"],
            registry=r,
        )
        self.batches = Counter("bridge_batches_total", "Batches committed", registry=r)
        self.batch_points = Histogram(
            "bridge_batch_points", "Points per committed batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.flush_seconds = Histogram(
            "bridge_batch_flush_seconds",
            "From a batch's first message to its commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "bridge_db_commit_seconds",
            "Duration of one database write transaction",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_retries = Counter(
            "bridge_db_retries_total",
            "Batch writes retried after a transient database error, by SQLSTATE class",
            ["reason"],
            registry=r,
        )


class Metrics(CommitMetrics):
    """One set of metrics per worker process, in its own registry (no globals)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessMetrics(r)
        super().__init__(r)
        self.messages_received = Counter(
            "bridge_messages_received_total", "MQTT messages received", registry=r
        )
        self.messages_rejected = Counter(
            "bridge_messages_rejected_total",
            "Messages dead-lettered whole, by reason",
            ["reason"],
            registry=r,
        )
        self.points_received = Counter(
            "bridge_points_received_total", "Valid points decoded from messages", registry=r
        )
        self.inflight_messages = Gauge(
            "bridge_inflight_messages", "Messages received and not yet acked", registry=r
        )
        self.mqtt_unread_bytes = Gauge(
            "bridge_mqtt_unread_bytes",
            "Bytes the broker sent that wait unread in the worker's sockets; steadily over "
            "64 KiB: the worker does not keep up (add workers)",
            registry=r,
        )
        self.queued_batches = Gauge(
            "bridge_queued_batches", "Closed batches waiting for a database connection", registry=r
        )
        self.db_pool_connections = Gauge(
            "bridge_db_pool_connections", "Database pool connections", ["state"], registry=r
        )
        self.redis_writes = Counter(
            "bridge_redis_writes_total", "Batches written to the Redis cache", registry=r
        )
        self.redis_write_seconds = Counter(
            "bridge_redis_write_seconds_total",
            "Time spent in cache writes (its rate: the share of time the cache takes)",
            registry=r,
        )
        self.redis_errors = Counter(
            "bridge_redis_errors_total",
            "Cache updates that failed, by reason",
            ["reason"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "bridge_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self.mqtt_reconnects = Counter(
            "bridge_mqtt_reconnects_total", "Connections made after the first", registry=r
        )
        self.mqtt_faults = Counter(
            "bridge_mqtt_faults_total",
            "Connections dropped by the bridge: callback_error (a bug of ours while handling a "
            "message) or receive_maximum_exceeded (the broker sent more unacked messages than "
            "our Receive Maximum); the broker redelivers",
            ["kind"],
            registry=r,
        )
        self.sparkplug_role = Gauge(
            "bridge_sparkplug_role",
            "1 while this worker holds the Sparkplug role and is subscribed to spBv1.0/, 0 standing by",
            registry=r,
        )
        self.sparkplug_rebirths = Counter(
            "bridge_sparkplug_rebirth_requests_total",
            "Rebirth commands (NCMD Node Control/Rebirth) by reason (no_birth, unknown_alias, "
            "seq_gap, malformed_payload) and outcome: requested, suppressed (within a "
            "node's cooldown) or failed (not published: no broker connection)",
            ["reason", "outcome"],
            registry=r,
        )
        self.sparkplug_stale_deaths = Counter(
            "bridge_sparkplug_stale_deaths_total",
            "NDEATHs ignored: their bdSeq was not the current NBIRTH's",
            registry=r,
        )
        self.origins_refused = Counter(
            "bridge_origins_refused_total",
            "Edge agents' origins not receipted: malformed, or naming another site than the "
            "message's topic (site)",
            ["reason"],
            registry=r,
        )
        self.receipts_published = Counter(
            "bridge_receipts_published_total",
            "Receipt messages published to edge agents",
            registry=r,
        )
        self.receipted_messages = Counter(
            "bridge_receipted_messages_total", "Messages receipted to edge agents", registry=r
        )
        self.receipts_dropped = Counter(
            "bridge_receipts_dropped_total",
            "Messages whose receipt was given up (too many waiting while the broker was "
            "unreachable); their agents publish them again",
            registry=r,
        )


def setup_logging(level: str = "INFO") -> None:
    """Plain, greppable lines on stderr: time, level, logger, message."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
