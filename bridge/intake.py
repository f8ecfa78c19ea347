"""Intake: each MQTT message routed, its points and dead letters batched, its
ack ticket taken, synchronously on the event loop (the source's callback).

    on_message --> Router.route --> Batcher.add --on_batch--> the committer's queue
                 \\-> AckTracker.track (QoS > 0)
    settle(batch) <-- after commit: AckTracker.settle (acks in arrival order)

Invariants:
  * Every message taken ends in a batch: points, dead letters or both; a
    fault of ours while routing it becomes an ``internal_error`` dead letter,
    never a lost message or a crashed worker.
  * Once ``stop_taking`` is called, messages are left alone: not tracked, not
    acked, so the broker redelivers them to this session.
  * ``unsettled`` counts the tickets taken and not yet settled; ``idle`` is
    set exactly when it is zero.
  * An edge agent's origin (``on_origin``, just before its message) goes on
    the message's ticket, and only when the topic's site, if the route has
    one, is the origin's gateway: what commits is then receipted
    (bridge/receipts.py). It never outlives its message.
  * Received messages and points are counted in plain ints per message and
    added to the metrics per batch and on each scrape (``count_received``):
    a prometheus_client update takes a lock, a few per message add up at
    20k messages/s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bridge.ack import AckTracker, Ticket
from bridge.batch import Batch, Batcher
from bridge.router import Routed, internal_error
from bridge.telemetry import Metrics
from core.receipts import parse_origin

log = logging.getLogger("bridge.intake")


class Routes(Protocol):
    """What turns a message into points and dead letters: bridge.router's
    Router, or the Sparkplug host (bridge.sparkplug.host)."""

    def route(self, topic: str, payload: bytes, received_us: int) -> Routed: ...


class Intake:
    def __init__(
        self,
        router: Routes,
        tracker: AckTracker,
        metrics: Metrics,
        on_batch: Callable[[Batch], None],
        *,
        max_points: int,
        max_delay_s: float,
    ) -> None:
        self.router = router
        self.tracker = tracker
        self.metrics = metrics
        self._on_batch = on_batch
        self.batcher = Batcher(max_points, max_delay_s, self._closed)
        self.taking = True
        self.unsettled = 0  # tickets in batches not yet committed
        self.idle = asyncio.Event()  # set when nothing is pending anywhere
        self.idle.set()
        self.last_message = time.monotonic()
        self._messages_received = 0
        self._points_received = 0
        self._origin: str | None = None  # of the message on_message gets next

    def on_origin(self, value: str) -> None:
        """The source's callback: the next message carries this origin."""
        self._origin = value

    def on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """The source's callback: decode and batch, synchronously, on the loop."""
        origin = self._origin
        if origin is not None:
            self._origin = None
        if not self.taking:
            return  # not acked: the broker redelivers it to this session
        self._messages_received += 1
        self.last_message = time.monotonic()
        ticket = self.tracker.track(mid) if qos > 0 else None
        received_us = time.time_ns() // 1000
        try:
            routed = self.router.route(topic, payload, received_us)
        except Exception as exc:  # a bug of ours: keep the message, keep running
            log.exception("cannot handle a message on %r; dead-lettered", topic[:200])
            routed = internal_error(topic, payload, received_us, exc)
        if routed.dead_letters:
            m = self.metrics
            if routed.rejected_message is not None:
                m.messages_rejected.labels(routed.rejected_message).inc()
            for reason, count in routed.rejected_points.items():
                m.points_rejected.labels(reason).inc(count)
        self._points_received += len(routed.points) + len(routed.texts) + len(routed.historical)
        if ticket is not None:
            if origin is not None:
                self._take_origin(ticket, origin, routed.site_id)
            self.unsettled += 1
            self.idle.clear()
        self.batcher.add(
            ticket,
            routed.points,
            routed.dead_letters,
            routed.device_id,
            routed.site_id,
            texts=routed.texts,
            historical=routed.historical,
            sites=routed.sites,
        )

    def _take_origin(self, ticket: Ticket, value: str, site_id: str | None) -> None:
        parsed = parse_origin(value)
        if parsed is None or (site_id is not None and site_id != parsed.gateway):
            self.metrics.origins_refused.labels("malformed" if parsed is None else "site").inc()
            return
        ticket.origin = parsed

    def stop_taking(self) -> None:
        """Leaves later messages to the broker; closes the open batch."""
        self.taking = False
        self.batcher.flush()

    def settle(self, batch: Batch) -> None:
        """The batch is committed: its messages may be acked."""
        self.tracker.settle(batch.tickets)
        self.unsettled -= len(batch.tickets)
        if self.unsettled == 0:
            self.idle.set()

    def count_received(self) -> None:
        self.metrics.messages_received.inc(self._messages_received)
        self.metrics.points_received.inc(self._points_received)
        self._messages_received = self._points_received = 0

    def _closed(self, batch: Batch) -> None:
        self._on_batch(batch)
        self.count_received()
