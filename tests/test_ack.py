"""Ordered acks: released in arrival order, once, never across connections."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.ack import AckTracker


class Connection:
    """Records the acks sent on it."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.calls: list[list[int]] = []

    def ack(self, mids: list[int]) -> None:
        self.sent.extend(mids)
        self.calls.append(mids)


def tracker_on(connection: Connection) -> AckTracker:
    tracker = AckTracker()
    tracker.new_connection(connection)
    return tracker


def test_acks_wait_for_every_earlier_message() -> None:
    conn = Connection()
    sent = conn.sent
    tracker = tracker_on(conn)
    a, b, c = tracker.track(1), tracker.track(2), tracker.track(3)
    assert tracker.settle([c]) == 0
    assert tracker.settle([b]) == 0
    assert sent == []
    assert tracker.settle([a]) == 3
    assert sent == [1, 2, 3]
    assert tracker.in_flight == 0


def test_tickets_of_an_old_connection_are_never_acked() -> None:
    first, second = Connection(), Connection()
    tracker = tracker_on(first)
    old = tracker.track(7)
    tracker.new_connection(second)
    new = tracker.track(7)  # the broker reuses the packet id on the new connection
    assert tracker.settle([old]) == 0
    assert first.sent == second.sent == []
    assert tracker.settle([new]) == 1
    assert second.sent == [7]
    assert first.sent == []


def test_a_ticket_is_acked_only_on_the_connection_object_that_delivered_it() -> None:
    first, second = Connection(), Connection()
    tracker = tracker_on(first)
    stale = tracker.track(7)
    # A ticket forged with the current epoch but another connection (a message
    # an abandoned connection delivered after the switch) is still refused.
    tracker.new_connection(second)
    stale.epoch = tracker.epoch
    tracker._pending.append(stale)
    assert tracker.settle([stale]) == 0
    assert first.sent == second.sent == []


@given(st.permutations(list(range(1, 60))))
def test_any_settle_order_acks_each_once_in_arrival_order(order: list[int]) -> None:
    conn = Connection()
    sent = conn.sent
    tracker = tracker_on(conn)
    tickets = {mid: tracker.track(mid) for mid in range(1, 60)}
    for mid in order:
        tracker.settle([tickets[mid]])
        # Whatever is acked is a prefix of the arrival order.
        assert sent == list(range(1, len(sent) + 1))
    assert sent == list(range(1, 60))


def test_a_batch_of_settled_messages_is_acked_in_one_call() -> None:
    conn = Connection()
    calls = conn.calls
    tracker = tracker_on(conn)
    tickets = [tracker.track(mid) for mid in (5, 6, 7, 8)]
    assert tracker.settle(tickets[1:3]) == 0  # 6 and 7 wait for 5
    assert tracker.settle([tickets[0]]) == 3
    assert tracker.settle([tickets[3]]) == 1
    assert calls == [[5, 6, 7], [8]]
