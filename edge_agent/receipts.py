"""Messages the cloud broker acknowledged, waiting for the bridge's commit
receipt (core/receipts.py: the format), in this run of the agent.

    spooled --publish--> in flight --PUBACK--> waiting --receipt--> committed: deleted
                             ^                   |
                             +---- republished --+  after a reconnect, or the receipt timeout
                                                    once later messages were receipted

Invariants:
  * Each message gets its sequence at its first publication and keeps it,
    republished or not; sequences count from 1 in this run's ``epoch``.
  * ``committed`` returns a message at most once, and only for a receipt of
    this epoch naming its sequence; whatever else a receipt names is counted
    by reason and ignored: ``never_sent`` (a sequence above any given: a
    forgery, or a bridge gone wrong), ``not_waiting`` (already committed, or
    given out before receipts were on: a repeated receipt is normal),
    ``other_epoch`` (an earlier run's messages; this run sends them again).
  * A receipt's ranges cost at most what is waiting, however wide they are.
  * Memory: a waiting message keeps its spool ids, not its payload (the
    forwarder packs it again from the spool to republish), so what waits is
    bounded by the spool's own bound.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from core.receipts import Receipt, receipt_topic
from edge_agent.pack import Message

log = logging.getLogger("edge_agent.forward")


class Waiting:
    def __init__(
        self, epoch: int, timeout_s: float, on_ignored: Callable[[str, int], None]
    ) -> None:
        self.epoch = epoch
        self._on_ignored = on_ignored
        self._timeout_s = timeout_s
        self._last_seq = 0
        self._highest_committed = 0  # the highest sequence receipted
        self._messages: dict[int, Message] = {}  # seq -> message, published or waiting
        self.readings = 0  # readings of the messages acknowledged and waiting
        self.ignored: Counter[str] = Counter()  # sequences ignored, by reason

    def number(self, message: Message) -> int:
        """The message's sequence, given at its first publication."""
        if not message.seq:
            self._last_seq += 1
            message.seq = self._last_seq
            self._messages[message.seq] = message
        return message.seq

    def acknowledged(self, message: Message, now: float) -> None:
        """The broker PUBACKed it: it waits for its receipt from now on."""
        if message.committed or message.seq not in self._messages:
            return
        if not message.acked_at:
            self.readings += message.points
        message.acked_at = now
        message.queued = False
        message.payload = b""  # packed again from the spool if it must be sent again

    def shrunk(self, message: Message, before: int) -> None:
        """Packed again with fewer readings than ``before`` (the spool dropped
        some when full)."""
        if message.acked_at and message.seq in self._messages:
            self.readings -= before - message.points

    def forget(self, message: Message) -> None:
        """Not waited for: deleted on PUBACK (receipts off), or gone from the spool."""
        if self._messages.pop(message.seq, None) is not None and message.acked_at:
            self.readings -= message.points
        message.committed = True

    def names_sent(self, receipt: Receipt) -> bool:
        """True if the receipt is of this run and names only sequences given."""
        return receipt.epoch == self.epoch and all(hi <= self._last_seq for _, hi in receipt.ranges)

    def committed(self, receipt: Receipt) -> list[Message]:
        """The messages this receipt names, taken out of the waiting."""
        if receipt.epoch != self.epoch:
            self._ignore("other_epoch", sum(hi - lo + 1 for lo, hi in receipt.ranges))
            return []
        out: list[Message] = []
        messages = self._messages
        for lo, named_hi in receipt.ranges:
            hi = min(named_hi, self._last_seq)
            if named_hi > hi:
                self._ignore("never_sent", named_hi - max(lo - 1, hi))
            if lo > hi:
                continue
            if hi - lo + 1 <= len(messages):
                seqs = [s for s in range(lo, hi + 1) if s in messages]
            else:
                seqs = [s for s in messages if lo <= s <= hi]
            self._ignore("not_waiting", hi - lo + 1 - len(seqs))
            if seqs:
                self._highest_committed = max(self._highest_committed, *seqs)
            for seq in seqs:
                message = messages.pop(seq)
                if message.acked_at:
                    self.readings -= message.points
                message.committed = True
                out.append(message)
        return out

    def _ignore(self, reason: str, count: int) -> None:
        if count > 0:
            self.ignored[reason] += count
            self._on_ignored(reason, count)

    def overdue(self, now: float) -> list[Message]:
        """Acknowledged messages whose receipt is late, and which later
        messages overtook: republish them. The timeout doubles with each
        publication, up to 16 times.

        Overtaken: a message sent after it has been receipted. While no
        receipt comes (the bridge is stopped, the database down) the broker
        most likely still queues them all, and publishing them again every
        timeout would only multiply its queue; the broker losing them in a
        crash is caught by the reconnect that follows."""
        out = []
        highest = self._highest_committed
        for message in self._messages.values():
            if message.acked_at and not message.queued and message.seq < highest:
                timeout = self._timeout_s * 2 ** min(message.attempts - 1, 4)
                if now - message.acked_at >= timeout:
                    out.append(message)
        return out

    def acknowledged_messages(self) -> list[Message]:
        """Every acknowledged message still waiting (after a reconnect: the
        broker may have lost them), oldest first."""
        return [m for m in self._messages.values() if m.acked_at and not m.queued]

    @property
    def messages(self) -> int:
        """Messages acknowledged and waiting for their receipt."""
        return sum(1 for m in self._messages.values() if m.acked_at)

    def oldest_wait_s(self, now: float | None = None) -> float:
        """How long the longest-waiting acknowledged message has waited."""
        now = time.monotonic() if now is None else now
        oldest = min((m.acked_at for m in self._messages.values() if m.acked_at), default=now)
        return max(0.0, now - oldest)


def log_mode(mode: str, on: bool, gateway: str, epoch: int) -> None:
    """Says at start when a reading leaves the spool."""
    if mode == "off":
        log.info(
            "commit receipts off (uplink.receipts): a reading leaves the spool on the "
            "broker's PUBACK; a broker crash can lose what it had not saved"
        )
    elif not on:
        log.info(
            "no commit receipt from the bridge seen yet for this spool: a reading leaves "
            "the spool on the broker's PUBACK, as without receipts, until the first one "
            "arrives on %s",
            receipt_topic(gateway),
        )
    else:
        log.info(
            "commit receipts on: a reading leaves the spool once the bridge committed it "
            "(receipts on %s, epoch %d)",
            receipt_topic(gateway),
            epoch,
        )
