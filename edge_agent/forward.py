"""The forwarder: readings leave the spool for the cloud broker, live first.

Contract: a reading is deleted from the spool only after the bridge sent a
commit receipt for its message (edge_agent/receipts.py): the database has
it. Before that, the cloud broker must have answered its PUBLISH with a
PUBACK that says delivered (a reason code below 0x80 and not 0x10, "no
matching subscribers"). A message answered otherwise is kept (in memory, its
readings still in the spool) and published again after a backoff of
``retry_min_s``, doubling up to ``retry_max_s``. A delivered message is
published again, with its sequence, after every reconnect (the broker may
have lost it in a crash before its autosave), and when its receipt has not
come within ``receipt_timeout_s`` (doubling with each try) while later
messages' receipts have (the broker dropped it, e.g. a full queue). A crash of the agent loses only its memory: on the next start
every reading still in the spool is sent again, and the bridge stores a
repeated reading once.

Without receipts (``uplink.receipts = off``, or ``auto`` before the bridge
ever sent one to this spool) a reading is deleted on its message's
delivered PUBACK, as before receipts existed; the log says which at start
and when the first receipt turns them on.

Order: live first, then backlog.

- A reading is *live* for ``live_window_s`` after it was spooled. Live
  readings are sent as soon as they are spooled, oldest first, limited only
  by the window.
- Everything older is *backlog*: what the spool held when the agent started,
  and what could not be sent in time (the uplink was down, or live traffic
  exceeded the uplink). Backlog is sent oldest first, at most ``drain_rate``
  readings a second, and only with the room live readings leave.

Why not FIFO: after an outage of hours, FIFO would make every dashboard and
alarm wait for the whole backlog before it sees the present; live-first keeps
them current, and the drain rate keeps many gateways coming back at once from
flooding the bridge. What it costs: readings reach the database out of time
order, which the database does not mind (rows are keyed by device time).

Every id is claimed once per process: either by the live cursor (ids at or
below it have been read for sending or handed to the backlog) or by one
backlog range, each drained from its low end. So nothing is read twice while
its message is in flight.

Window: at most ``min(window, the broker's Receive Maximum)`` messages are
published and unanswered at once, messages waiting for a retry included, so
memory stays bounded whatever the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import count

from core.receipts import decode_receipt, format_origin, new_epoch, receipt_topic
from edge_agent.config import UplinkSettings
from edge_agent.pack import Message, Packer
from edge_agent.receipts import Waiting, log_mode
from edge_agent.spool.writer import SpoolWriter
from edge_agent.telemetry import Metrics, Rate
from edge_agent.uplink import Uplink, delivered, threadsafe_waker

log = logging.getLogger("edge_agent.forward")

# Readings per spool read, which bounds the memory of packed, unsent messages.
# A backlog read is larger: its readings are spread over every device, and a
# device's share of one read is what its messages can pack (100,000 over 1000
# devices: 100 readings a message).
LIVE_CHUNK = 20_000
BACKLOG_CHUNK = 100_000
IDLE_TICK_S = 0.05  # wake-up period for retries and the drain rate when nothing else happens
OVERDUE_CHECK_S = 1.0  # how often late receipts are looked for
RECEIPTS_SEEN = "receipts_seen"  # spool state: 1 once the bridge sent this spool a receipt


class Forwarder:
    def __init__(
        self, settings: UplinkSettings, site_id: str, writer: SpoolWriter, metrics: Metrics
    ) -> None:
        spool = writer.spool
        self._settings = settings
        self._spool = spool
        self._writer = writer
        self._metrics = metrics
        self._packer = Packer(
            settings.topic,
            site_id,
            settings.codec,
            settings.max_points_per_message,
            settings.max_bytes_per_message,
        )
        self._wake_event = asyncio.Event()
        self._uplink: Uplink | None = None
        self._connects_seen = 0
        self.rate = Rate()

        last_id = spool.last_id
        self._live_cursor = last_id
        self._announced = last_id  # the last id a collector's committed append told of
        # (low exclusive, high inclusive) id ranges, oldest first; all that was
        # spooled before this start is backlog.
        self._backlog: deque[list[int]] = deque([[0, last_id]] if last_id else [])
        self._appends: deque[tuple[float, int]] = deque()  # (when, last id before it)
        self._live_ready: deque[Message] = deque()
        self._backlog_ready: deque[Message] = deque()
        self._retries: list[tuple[float, int, Message]] = []  # heap by due time
        self._order = count()
        self._inflight: dict[int, Message] = {}
        self._undelivered: dict[str, int] = {}  # reason -> messages, since the last log line
        self._undelivered_logged_at = 0.0
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        self._gateway = site_id
        self.waiting = Waiting(
            new_epoch(),
            settings.receipt_timeout_s,
            lambda reason, n: metrics.receipts_ignored.labels(reason).inc(n),
        )
        # True: readings wait for their receipt; False: they leave on PUBACK.
        self.receipts_on = settings.receipts == "on" or (
            settings.receipts == "auto" and spool.get_state(RECEIPTS_SEEN, 0) == 1
        )
        self._republish: deque[Message] = deque()  # acknowledged, no receipt: to pack again
        self._republish_ready: deque[Message] = deque()  # packed again
        self._overdue_checked = time.monotonic()

    # --- called by the agent ---------------------------------------------------

    def spooled(self, first_id: int, count: int) -> None:
        """A collector's append committed ``count`` readings from ``first_id`` on."""
        self._appends.append((time.monotonic(), first_id - 1))
        self._announced = max(self._announced, first_id + count - 1)
        self._wake_event.set()

    @property
    def unanswered(self) -> int:
        """Messages published and not answered yet, or waiting for a retry."""
        return len(self._inflight) + len(self._retries)

    @property
    def receipt_timeout_s(self) -> float:
        return self._settings.receipt_timeout_s

    @property
    def connected(self) -> bool:
        return self._uplink is not None and self._uplink.connected

    @property
    def uplink_error(self) -> str:
        """Why the uplink is down, when it is."""
        if self._uplink is None or self._uplink.connected:
            return ""
        return self._uplink.last_error

    async def run(self, stop: asyncio.Event) -> None:
        """Forwards until ``stop`` is set (the collectors have finished by then),
        then for up to ``stop_grace_s`` more while the spool holds readings
        and the uplink is up, and disconnects. What is left stays spooled."""
        loop = asyncio.get_running_loop()
        log_mode(self._settings.receipts, self.receipts_on, self._gateway, self.waiting.epoch)
        topic = receipt_topic(self._gateway) if self._settings.receipts != "off" else None
        self._uplink = Uplink(self._settings, threadsafe_waker(loop, self._wake_event), topic)
        self._uplink.start()
        try:
            while not stop.is_set():
                await self._cycle()
                await self._sleep()
            deadline = time.monotonic() + self._settings.stop_grace_s
            while (
                (self._spool.depth or self._inflight)
                and self.connected
                and time.monotonic() < deadline
            ):
                await self._cycle()
                await self._sleep()
            self._settle()
        finally:
            await asyncio.to_thread(self._uplink.stop)

    # --- one turn ----------------------------------------------------------------

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake_event.wait(), IDLE_TICK_S)
        self._wake_event.clear()

    async def _cycle(self) -> None:
        self._settle()
        uplink = self._uplink
        assert uplink is not None
        now = time.monotonic()
        self._age_live(now)
        self._metrics.connected.set(1 if uplink.connected else 0)
        if uplink.connects > self._connects_seen:
            self._metrics.connects.inc(uplink.connects - self._connects_seen)
            self._connects_seen = uplink.connects
            self._queue_again(self.waiting.acknowledged_messages(), "reconnect")
        if now - self._overdue_checked >= OVERDUE_CHECK_S:
            self._overdue_checked = now
            self._queue_again(self.waiting.overdue(now), "timeout")
        if not uplink.connected:
            return
        # A retry is already counted in the window: publishing it takes no room
        # (waiting for room here would wait forever once every message of a
        # full window was refused, e.g. with no subscriber after a broker restart).
        while self._retries and self._retries[0][0] <= now:
            _, _, message = heapq.heappop(self._retries)
            if not message.committed:
                self._publish(message)
        room = min(self._settings.window, uplink.receive_maximum) - self.unanswered
        room = self._send(room, self._republish_ready, self._repack)
        room = self._send(room, self._live_ready, self._read_live)
        self._send(room, self._backlog_ready, self._read_backlog)
        self._metrics.inflight.set(self.unanswered)
        # Give the collectors' appends a turn between large batches.
        await asyncio.sleep(0)

    def _send(self, room: int, ready: deque[Message], refill: Callable[[], list[Message]]) -> int:
        while room > 0:
            if not ready:
                ready.extend(refill())
                if not ready:
                    break
            self._publish(ready.popleft())
            room -= 1
        return room

    def _publish(self, message: Message) -> None:
        assert self._uplink is not None
        origin = None
        if self._settings.receipts != "off":
            origin = format_origin(self._gateway, self.waiting.epoch, self.waiting.number(message))
        message.attempts += 1
        mid = self._uplink.publish(message.topic, message.payload, origin)
        self._inflight[mid] = message

    def _queue_again(self, messages: list[Message], reason: str) -> None:
        """Acknowledged messages without a receipt go out again."""
        for message in messages:
            message.queued = True
            self._republish.append(message)
        if messages:
            self._metrics.republished.labels(reason).inc(len(messages))

    def _repack(self) -> list[Message]:
        """The next message to publish again, packed from what the spool
        still holds of it (the spool may have dropped some when full)."""
        while self._republish:
            message = self._republish.popleft()
            if message.committed:
                continue
            rows = self._spool.read_ids(message.ids)
            if not rows:
                self.waiting.forget(message)
                continue
            before = message.points
            self._packer.repack(message, rows)
            self.waiting.shrunk(message, before)
            return [message]
        return []

    def _settle(self) -> None:
        """Takes in the broker's answers: deletes what was delivered, schedules
        the rest for a retry."""
        assert self._uplink is not None
        outcomes = self._uplink.outcomes
        done: list[int] = []
        messages = points = 0
        now = time.monotonic()
        while outcomes:
            mid, reason, name = outcomes.popleft()
            message = self._inflight.pop(mid, None)
            if message is None or message.committed:
                continue
            if delivered(reason):
                messages += 1
                points += message.points
                if self.receipts_on:
                    self.waiting.acknowledged(message, now)
                else:
                    done.extend(message.ids)
                    self.waiting.forget(message)
                continue
            self._metrics.not_delivered.labels(reason=name).inc()
            backoff = min(
                self._settings.retry_max_s,
                self._settings.retry_min_s * 2 ** min(message.attempts - 1, 16),
            )
            self._undelivered[name] = self._undelivered.get(name, 0) + 1
            heapq.heappush(self._retries, (now + backoff, next(self._order), message))
        self._log_undelivered(now)
        if messages:
            self._metrics.published_messages.inc(messages)
            self._metrics.published_points.inc(points)
            self.rate.add(points)
        done.extend(self._take_receipts())
        if done:
            self._writer.delete(done)

    def _take_receipts(self) -> list[int]:
        """The spool ids the receipts that arrived commit."""
        assert self._uplink is not None
        receipts = self._uplink.receipts
        ids: list[int] = []
        committed = 0
        while receipts:
            receipt = decode_receipt(receipts.popleft())
            if receipt is None:
                self._metrics.receipts_ignored.labels("malformed").inc()
                continue
            self._metrics.receipts.inc()
            if not self.receipts_on and self.waiting.names_sent(receipt):
                self.receipts_on = True
                self._writer.set_state(RECEIPTS_SEEN, 1)
                log.info(
                    "the bridge sends commit receipts: from now on a reading leaves the spool "
                    "only once the database has it"
                )
            for message in self.waiting.committed(receipt):
                ids.extend(message.ids)
                committed += message.points
        if committed:
            self._metrics.committed_points.inc(committed)
        return ids

    def _log_undelivered(self, now: float) -> None:
        """At most one line every 10 s about messages the broker did not deliver."""
        if not self._undelivered or now - self._undelivered_logged_at < 10:
            return
        log.warning(
            "the cloud broker did not deliver %s; kept in the spool and sent again after "
            "a backoff (%.1f-%.0f s). 'No matching subscribers' means the bridge is not "
            "subscribed (yet): e.g. the broker restarted",
            ", ".join(f"{n} messages ({reason})" for reason, n in self._undelivered.items()),
            self._settings.retry_min_s,
            self._settings.retry_max_s,
        )
        self._undelivered.clear()
        self._undelivered_logged_at = now

    # --- what to send ---------------------------------------------------------------

    def _age_live(self, now: float) -> None:
        """Readings spooled longer ago than the live window and not yet read
        become a backlog range."""
        cutoff = now - self._settings.live_window_s
        while self._appends and self._appends[0][0] < cutoff:
            self._appends.popleft()
        # Not spool.last_id: the writer thread may have committed an append the
        # forwarder has not been told of yet, and its readings are live.
        floor = self._appends[0][1] if self._appends else self._announced
        if floor > self._live_cursor:
            self._backlog.append([self._live_cursor, floor])
            self._live_cursor = floor

    def _read_live(self) -> list[Message]:
        rows = self._spool.read(self._live_cursor, None, LIVE_CHUNK)
        if not rows:
            return []
        self._live_cursor = rows[-1][0]
        return self._packer.pack(rows)

    def _read_backlog(self) -> list[Message]:
        limit = BACKLOG_CHUNK
        if self._settings.drain_rate > 0:
            now = time.monotonic()
            rate = self._settings.drain_rate
            # At most one second's worth saved up, so a pause is not followed by a
            # burst; and read only once a full chunk (or a second's worth) is
            # allowed, so that messages stay well packed at any rate.
            self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens < min(BACKLOG_CHUNK, rate):
                return []
            limit = min(limit, int(self._tokens))
        while self._backlog:
            low, high = self._backlog[0]
            rows = self._spool.read(low, high + 1, limit)
            if not rows:
                self._backlog.popleft()
                continue
            self._backlog[0][0] = rows[-1][0]
            if self._settings.drain_rate > 0:
                self._tokens -= len(rows)
            return self._packer.pack(rows)
        return []
