"""The receipt format, and the agent's bookkeeping of what waits for one."""

from __future__ import annotations

from array import array

from core.receipts import (
    Receipt,
    decode_receipt,
    encode_receipt,
    format_origin,
    parse_origin,
    ranges,
)
from edge_agent.pack import Message
from edge_agent.receipts import Waiting


def test_origins_and_receipts_round_trip_and_refuse_what_is_not_one() -> None:
    assert parse_origin(format_origin("site-1", 77, 5)) == ("site-1", 77, 5)
    for bad in ("", "site-1 77", "site-1 x 5", "site-1 77 0", " 77 5", "a b c d", "s 0 1"):
        assert parse_origin(bad) is None, bad
    assert ranges([5, 1, 2, 3, 3, 9, 8]) == [[1, 3], [5, 5], [8, 9]]
    assert decode_receipt(encode_receipt(7, [[1, 3], [5, 5]])) == Receipt(7, [(1, 3), (5, 5)])
    for bad in (
        b"x",
        b"[]",
        b'{"epoch": "7", "seq": []}',
        b'{"epoch": 7, "seq": [[3, 1]]}',
        b'{"epoch": 7, "seq": [[0, 1]]}',
        b'{"epoch": 7, "seq": [[1.0, 2]]}',
    ):
        assert decode_receipt(bad) is None, bad


def message(first_id: int, points: int) -> Message:
    return Message("t", b"payload", array("q", range(first_id, first_id + points)))


def test_only_a_receipt_of_this_run_for_a_sequence_sent_commits_and_only_once() -> None:
    ignored: list[tuple[str, int]] = []
    waiting = Waiting(42, 10.0, lambda reason, n: ignored.append((reason, n)))
    sent = [message(1 + 10 * i, 10) for i in range(5)]
    for m in sent:
        waiting.number(m)
    for m in sent[:4]:
        waiting.acknowledged(m, now=100.0)
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
    assert (waiting.messages, waiting.readings) == (4, 40)
    assert sent[0].payload == b""  # packed again from the spool if needed

    # Another run's epoch, and sequences never sent (however wide): nothing.
    assert waiting.committed(Receipt(41, [(1, 5)])) == []
    assert waiting.committed(Receipt(42, [(6, 10**15)])) == []
    assert not waiting.names_sent(Receipt(42, [(1, 6)]))
    assert ignored == [("other_epoch", 5), ("never_sent", 10**15 - 5)]

    # A range over what was sent: those waiting, the rest ignored.
    assert waiting.committed(Receipt(42, [(2, 3), (5, 7)])) == [sent[1], sent[2], sent[4]]
    assert ignored[2:] == [("never_sent", 2)]
    assert waiting.committed(Receipt(42, [(1, 3)])) == [sent[0]]
    assert ignored[3:] == [("not_waiting", 2)]
    assert (waiting.messages, waiting.readings) == (1, 10)
    assert all(m.committed for m in (sent[0], sent[1], sent[2], sent[4]))


def test_late_receipts_are_due_again_with_a_doubling_timeout_once_overtaken() -> None:
    waiting = Waiting(1, 10.0, lambda reason, n: None)
    m, later = message(1, 3), message(4, 3)
    for each in (m, later):
        waiting.number(each)
        each.attempts = 1
        waiting.acknowledged(each, now=100.0)
    # No receipt at all (the bridge is down): the broker still queues them.
    assert waiting.overdue(1000.0) == []
    assert waiting.committed(Receipt(1, [(2, 2)])) == [later]  # overtaken
    assert waiting.overdue(109.0) == []
    assert waiting.overdue(110.0) == [m]
    assert waiting.acknowledged_messages() == [m]
    m.queued = True  # the forwarder queued it: not due twice
    assert waiting.overdue(200.0) == []
    assert waiting.acknowledged_messages() == []
    m.attempts = 2
    waiting.acknowledged(m, now=200.0)  # its PUBACK again
    assert waiting.overdue(219.0) == []
    assert waiting.overdue(220.0) == [m]
    assert waiting.oldest_wait_s(now=205.0) == 5.0
    waiting.forget(m)
    assert (waiting.messages, waiting.readings) == (0, 0)


def test_a_message_packed_again_with_fewer_readings_counts_only_those() -> None:
    waiting = Waiting(1, 10.0, lambda reason, n: None)
    m = message(1, 10)
    waiting.number(m)
    waiting.acknowledged(m, now=1.0)
    assert waiting.readings == 10
    m.ids = array("q", range(5, 11))  # the spool dropped the oldest 4 when full
    waiting.shrunk(m, 10)
    assert waiting.readings == 6
    assert waiting.committed(Receipt(1, [(1, 1)])) == [m]
    assert waiting.readings == 0
