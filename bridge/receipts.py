"""Commit receipts: each worker tells the edge agents what it committed.

    Worker.after_commit --committed(batch)--> pending {(gateway, epoch): [seq...]}
    every interval_ms: one QoS 1 PUBLISH per (gateway, epoch) on receipts/<gateway>
                       (core/receipts.py: the format), through the worker's session

Contracts:
  * A message is receipted only after its batch committed: its points are in
    the database, or its dead letters are (a dead-lettered message can never
    succeed, so it is receipted too). ``committed`` runs in the after-commit
    hook, before the acks, and never blocks: it only appends to ``pending``.
  * Each worker receipts what it committed, on its own connection: with N
    workers in a share group each gateway gets up to N receipts per interval,
    each naming only its worker's messages.
  * A receipt that cannot be published (no connection, or it dropped before
    the PUBACK) is kept and published with the next one. At most
    ``max_pending`` messages wait: beyond that the oldest gateways' receipts
    are given up and counted; their agents publish those messages again after
    their receipt timeout, and the database stores each reading once.
  * Receipts are at least once: the same sequence may be receipted twice
    (a redelivered message committed again). Agents ignore what they do not
    wait for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from bridge.batch import Batch
from bridge.commit import CommitResult
from bridge.config import ReceiptSettings
from bridge.errors import NotConnected
from bridge.telemetry import Metrics
from core.receipts import encode_receipt, ranges, receipt_topic

log = logging.getLogger("bridge.receipts")

Key = tuple[str, int]  # gateway, epoch


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """QoS 1: returns on PUBACK; raises NotConnected."""


class Receipter:
    def __init__(self, settings: ReceiptSettings, publisher: Publisher, metrics: Metrics) -> None:
        self._interval_s = settings.interval_ms / 1000
        self._max_pending = settings.max_pending
        self._publisher = publisher
        self._metrics = metrics
        self._pending: dict[Key, list[int]] = {}
        self._count = 0
        self._failed_logged = 0.0

    @property
    def pending(self) -> int:
        """Messages committed and not receipted yet."""
        return self._count

    def committed(self, batch: Batch, result: CommitResult) -> None:
        """The after-commit hook: the batch's messages that carry an origin
        are due a receipt."""
        pending = self._pending
        added = 0
        for ticket in batch.tickets:
            origin = ticket.origin
            if origin is not None:
                key = (origin.gateway, origin.epoch)
                seqs = pending.get(key)
                if seqs is None:
                    seqs = pending[key] = []
                seqs.append(origin.seq)
                added += 1
        if added:
            self._count += added
            if self._count > self._max_pending:
                self._give_up()

    async def run(self) -> None:
        """Publishes what is pending every interval, forever."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Publishes every pending receipt; what fails stays pending."""
        if not self._pending:
            return
        due, self._pending = self._pending, {}
        self._count = 0
        await asyncio.gather(*(self._publish(key, seqs) for key, seqs in due.items()))

    async def _publish(self, key: Key, seqs: list[int]) -> None:
        gateway, epoch = key
        try:
            await self._publisher.publish(
                receipt_topic(gateway), encode_receipt(epoch, ranges(seqs)), qos=1
            )
        except NotConnected as exc:
            self._keep(key, seqs)
            now = time.monotonic()
            if now - self._failed_logged > 10:
                self._failed_logged = now
                log.warning("receipts wait for the broker (%d messages): %s", self._count, exc)
            return
        self._metrics.receipts_published.inc()
        self._metrics.receipted_messages.inc(len(seqs))

    def _keep(self, key: Key, seqs: list[int]) -> None:
        self._pending.setdefault(key, []).extend(seqs)
        self._count += len(seqs)
        if self._count > self._max_pending:
            self._give_up()

    def _give_up(self) -> None:
        """Drops the receipts of the gateways that have waited longest
        (insertion order) until the bound holds again."""
        while self._count > self._max_pending and self._pending:
            key = next(iter(self._pending))
            seqs = self._pending.pop(key)
            self._count -= len(seqs)
            self._metrics.receipts_dropped.inc(len(seqs))
            log.warning(
                "gave up receipts of %d messages of gateway %s (more than %d waiting); "
                "it publishes them again",
                len(seqs),
                key[0],
                self._max_pending,
            )
