"""Every metric the edge agent exports, the devices' health, and its log setup.

A dropped reading always records why (only one reason exists: the spool was
full). A message the broker did not deliver is not dropped: it is counted by
reason and sent again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """One set of metrics per agent, in its own registry (no globals)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.collected = Counter(
            "edge_readings_collected_total",
            "Readings spooled, by collector",
            ["source"],
            registry=r,
        )
        self.spool_readings = Gauge(
            "edge_spool_readings", "Readings in the spool, unsent", registry=r
        )
        self.spool_oldest_age = Gauge(
            "edge_spool_oldest_age_seconds",
            "Age (by its device time) of the oldest reading in the spool; 0 when empty",
            registry=r,
        )
        self.spool_bytes = Gauge("edge_spool_bytes", "Size of the spool's files", registry=r)
        self.dropped = Counter(
            "edge_spool_dropped_readings_total",
            "Oldest readings dropped because the spool was full (kept across restarts)",
            registry=r,
        )
        self.published_messages = Counter(
            "edge_published_messages_total", "Messages the cloud broker acknowledged", registry=r
        )
        self.published_points = Counter(
            "edge_published_readings_total",
            "Readings the cloud broker acknowledged (they leave the spool then, or at their "
            "commit receipt)",
            registry=r,
        )
        self.receipts = Counter(
            "edge_receipts_total", "Commit receipts received from the bridge", registry=r
        )
        self.receipts_ignored = Counter(
            "edge_receipt_sequences_ignored_total",
            "Sequences named by receipts and ignored: never_sent (above any sent: forged, or "
            "a bridge gone wrong), not_waiting (already committed), other_epoch (an earlier "
            "run's), malformed (whole receipts that do not parse)",
            ["reason"],
            registry=r,
        )
        self.committed_points = Counter(
            "edge_committed_readings_total",
            "Readings the bridge receipted as committed, deleted from the spool",
            registry=r,
        )
        self.republished = Counter(
            "edge_republished_messages_total",
            "Acknowledged messages published again for lack of a receipt: after a reconnect, "
            "or a timeout",
            ["reason"],
            registry=r,
        )
        self.waiting_messages = Gauge(
            "edge_receipt_waiting_messages",
            "Messages the broker acknowledged, waiting for their commit receipt",
            registry=r,
        )
        self.waiting_points = Gauge(
            "edge_receipt_waiting_readings",
            "Readings of the messages waiting for their commit receipt (still in the spool)",
            registry=r,
        )
        self.waiting_oldest = Gauge(
            "edge_receipt_oldest_wait_seconds",
            "How long the longest-waiting acknowledged message has waited for its receipt",
            registry=r,
        )
        self.publish_rate = Gauge(
            "edge_publish_readings_per_second",
            "Readings acknowledged per second, over the last 10 s",
            registry=r,
        )
        self.not_delivered = Counter(
            "edge_publish_not_delivered_total",
            "PUBACKs saying a message was not delivered, by reason; each is sent again",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge(
            "edge_inflight_messages", "Messages published and not yet acknowledged", registry=r
        )
        self.connected = Gauge(
            "edge_uplink_connected", "1 when connected to the cloud broker", registry=r
        )
        self.connects = Counter(
            "edge_uplink_connects_total", "Successful connections to the cloud broker", registry=r
        )
        self.device_up = Gauge(
            "edge_device_up", "1 when the device answered its last poll", ["device"], registry=r
        )
        self.device_errors = Counter(
            "edge_device_errors_total",
            "Failed polls (no answer, Modbus exception)",
            ["device"],
            registry=r,
        )
        self.local_rejected = Counter(
            "edge_local_rejected_total",
            "Readings from the gateway's broker that can never be stored, by reason",
            ["reason"],
            registry=r,
        )
        self.bad_values = Counter(
            "edge_bad_values_total",
            "Values not spooled because they are not finite (NaN, infinity)",
            ["device"],
            registry=r,
        )
        # Polling on time (Modbus devices, OPC UA poll groups).
        self.poll_jitter = Histogram(
            "edge_poll_jitter_seconds",
            "How late a scheduled poll started, its wait for a free slot included (retries "
            "of a device that is down are not scheduled polls)",
            ["collector"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.poll_overruns = Counter(
            "edge_poll_overruns_total",
            "Polls skipped because the one before took longer than the interval",
            ["device"],
            registry=r,
        )
        self.modbus_commit_seconds = Histogram(
            "edge_modbus_commit_seconds",
            "How long a group commit of Modbus polls took (on the spool's writer thread: "
            "the polls go on meanwhile, and the next commit takes what they read)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.modbus_polls = Counter(
            "edge_modbus_polls_total", "Modbus polls answered", ["device"], registry=r
        )
        self.modbus_requests = Counter(
            "edge_modbus_requests_total",
            "Modbus read requests of the polls answered",
            ["device"],
            registry=r,
        )
        self.modbus_requests_per_poll = Gauge(
            "edge_modbus_requests_per_poll",
            "Read requests one poll of the device takes (adjacent registers share one)",
            ["device"],
            registry=r,
        )
        # OPC UA (edge_agent.collect.opcua).
        self.opcua_connected = Gauge(
            "edge_opcua_connected",
            "1 while the session with the server is up",
            ["server"],
            registry=r,
        )
        self.opcua_reconnects = Counter(
            "edge_opcua_reconnects_total",
            "Sessions re-established (and subscriptions re-created) after one was lost",
            ["server"],
            registry=r,
        )
        self.opcua_gap_seconds = Counter(
            "edge_opcua_gap_seconds_total",
            "Time without a session to the server after one was lost (no values then)",
            ["server"],
            registry=r,
        )
        self.opcua_monitored_items = Gauge(
            "edge_opcua_monitored_items",
            "Monitored items the server accepted",
            ["server"],
            registry=r,
        )
        self.opcua_requests = Counter(
            "edge_opcua_requests_total",
            "Service requests sent, by service (chunked to the server's limits)",
            ["server", "service"],
            registry=r,
        )
        self.opcua_bad_values = Counter(
            "edge_opcua_bad_values_total",
            "Values not stored because their status is Bad, by status",
            ["server", "status"],
            registry=r,
        )
        self.opcua_skipped = Counter(
            "edge_opcua_skipped_values_total",
            "Values not stored, by reason: text (strings are not stored yet), "
            "unsupported type, array elements past max_array_elements, repeated (a "
            "value already stored, sent again after a resubscribe), node errors",
            ["server", "reason"],
            registry=r,
        )


@dataclass
class DeviceHealth:
    up: bool = False
    errors: int = 0
    last_error: str = ""
    last_ok_at: float | None = None


class Rate:
    """Events per second over a sliding window, for the operator's eye."""

    def __init__(self, window_s: float = 10.0) -> None:
        self._window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, count: int) -> None:
        self._events.append((time.monotonic(), count))
        self._total += count

    def per_second(self) -> float:
        cutoff = time.monotonic() - self._window_s
        while self._events and self._events[0][0] < cutoff:
            self._total -= self._events.popleft()[1]
        return self._total / self._window_s


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    # pymodbus logs every failed request with a traceback; the agent says the
    # same in one line per device state change.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # asyncua likewise (tracebacks of requests that failed when a server went
    # away); edge_agent.opcua says what happened and what it does about it.
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("paho").setLevel(logging.WARNING)
