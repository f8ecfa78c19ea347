"""Ordered acknowledgements.

MQTT requires PUBACKs in the order the PUBLISHes arrived, and the bridge may
PUBACK a message only once it is settled: every point committed, every reject
dead-lettered. Batches commit out of order when several are in flight, so
the tracker holds settled messages back until every earlier one is settled
too, then releases the longest settled prefix.

Invariants:
  * ``track`` is called once per message, in arrival order; it returns the
    message's ticket.
  * A ticket is settled at most once; it is acked at most once, and only
    after (or together with) every earlier ticket of the same connection.
  * The packet ids released by one ``settle`` call go to the connection's
    ``ack`` in arrival order, in one list, so that a batch's acks go out in
    one write.
  * Tickets belong to one connection: the connection object itself (by
    identity) and its epoch. A ticket is acked only on the connection that
    delivered it, and only while it is the current one. After a reconnect,
    tickets of the old connection are never acked: their packet ids mean
    nothing on the new connection, and the broker redelivers those messages
    anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from core.receipts import Origin


class Connection(Protocol):
    def ack(self, mids: list[int]) -> None:
        """PUBACKs these packet ids, in this order."""


@dataclass(slots=True)
class Ticket:
    connection: Connection | None
    epoch: int
    mid: int
    settled: bool = False
    origin: Origin | None = None  # an edge agent's, for its receipt (bridge/receipts.py)


class AckTracker:
    """Releases acks in arrival order. Not thread-safe: use from the event loop."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._epoch = 0
        self._pending: deque[Ticket] = deque()

    @property
    def in_flight(self) -> int:
        """Messages received on this connection and not yet acked."""
        return len(self._pending)

    @property
    def epoch(self) -> int:
        return self._epoch

    def new_connection(self, connection: Connection) -> int:
        """Forgets the tickets of the previous connection; from now on messages
        are tracked for, and acked on, ``connection``. Returns the new epoch."""
        self._connection = connection
        self._epoch += 1
        self._pending.clear()
        return self._epoch

    def track(self, mid: int) -> Ticket:
        ticket = Ticket(self._connection, self._epoch, mid)
        self._pending.append(ticket)
        return ticket

    def settle(self, tickets: Iterable[Ticket]) -> int:
        """Marks messages settled; sends every ack now releasable. Returns how many."""
        epoch, connection = self._epoch, self._connection
        for ticket in tickets:
            # Old tickets are skipped: the broker redelivers those messages
            # on the current connection.
            if ticket.epoch == epoch and ticket.connection is connection:
                ticket.settled = True
        pending = self._pending
        mids = []
        while pending and pending[0].settled:
            mids.append(pending.popleft().mid)
        if mids and connection is not None:
            connection.ack(mids)
        return len(mids)
