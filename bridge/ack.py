"""Ordered acknowledgements.

MQTT requires PUBACKs in the order the PUBLISHes arrived, and the bridge may
PUBACK a message only once it is settled: every point committed, every reject
dead-lettered. Batches commit out of order when several are in flight, so
the tracker holds settled messages back until every earlier one is settled
too, then releases the longest settled prefix.

Invariants:
  * ``track`` is called once per message, in arrival order; it returns the
    message's ticket.
  * A ticket is settled at most once; ``ack`` is called for it at most once,
    and only after every earlier ticket of the same connection was acked.
  * Tickets belong to one connection (an epoch). After a reconnect, tickets
    of the old connection are never acked: their packet ids mean nothing on
    the new connection, and the broker redelivers those messages anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Ticket:
    epoch: int
    mid: int
    settled: bool = False


class AckTracker:
    """Releases acks in arrival order. Not thread-safe: use from the event loop."""

    def __init__(self, send_ack: Callable[[int], None]) -> None:
        self._send_ack = send_ack
        self._epoch = 0
        self._pending: deque[Ticket] = deque()

    @property
    def in_flight(self) -> int:
        """Messages received on this connection and not yet acked."""
        return len(self._pending)

    @property
    def epoch(self) -> int:
        return self._epoch

    def new_connection(self) -> int:
        """Forgets the tickets of the previous connection; returns the new epoch."""
        self._epoch += 1
        self._pending.clear()
        return self._epoch

    def track(self, mid: int) -> Ticket:
        ticket = Ticket(self._epoch, mid)
        self._pending.append(ticket)
        return ticket

    def settle(self, ticket: Ticket) -> int:
        """Marks a message settled; sends every ack now releasable. Returns how many."""
        if ticket.epoch != self._epoch:
            return 0  # the broker will redeliver it on the current connection
        ticket.settled = True
        released = 0
        pending = self._pending
        while pending and pending[0].settled:
            self._send_ack(pending.popleft().mid)
            released += 1
        return released
