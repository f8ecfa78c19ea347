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

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

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
            "Readings the cloud broker acknowledged (and that left the spool)",
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
    logging.getLogger("paho").setLevel(logging.WARNING)
