"""Micro-batching: messages in, batches out.

A batch closes at ``max_points`` points (numeric and text values together) or
``max_delay`` after its first message, whichever comes first. A message is
never split: all of its points, text values, dead letters and its ack ticket
travel in one batch, so a batch's commit settles whole messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.ack import Ticket
from core.types import DeadLetter, Point, TextPoint


@dataclass(slots=True)
class Batch:
    opened: float = field(default_factory=time.monotonic)
    points: list[Point] = field(default_factory=list)
    texts: list[TextPoint] = field(default_factory=list)  # string values
    # Points also in ``points`` that must not update the latest values
    # (Sparkplug is_historical): stored, kept out of the cache.
    uncached: set[Point] = field(default_factory=set)
    tickets: list[Ticket] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sites: dict[str, str | None] = field(default_factory=dict)  # device_id -> site_id


def merged(batches: list[Batch]) -> Batch:
    """One batch holding everything of ``batches``, to be committed at once."""
    out = Batch(opened=min(b.opened for b in batches))
    for b in batches:
        out.points.extend(b.points)
        out.texts.extend(b.texts)
        out.uncached.update(b.uncached)
        out.tickets.extend(b.tickets)
        out.dead_letters.extend(b.dead_letters)
        out.sites.update(b.sites)
    return out


class Batcher:
    """Collects messages into batches; hands each closed batch to ``on_close``.

    Runs on the event loop; ``add`` never awaits, so the MQTT callback feeds
    it directly. Memory is bounded upstream: the broker sends at most Receive
    Maximum unacked messages.
    """

    def __init__(
        self, max_points: int, max_delay_s: float, on_close: Callable[[Batch], None]
    ) -> None:
        self._max_points = max_points
        self._max_delay_s = max_delay_s
        self._on_close = on_close
        self._current: Batch | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add(
        self,
        ticket: Ticket | None,
        points: list[Point],
        dead_letters: list[DeadLetter],
        device_id: str | None,
        site_id: str | None,
        *,
        texts: list[TextPoint] | None = None,
        historical: list[Point] | None = None,
        sites: dict[str, str | None] | None = None,
    ) -> None:
        """``historical`` points are stored like ``points`` but not cached."""
        batch = self._current
        if batch is None:
            batch = self._current = Batch()
            self._timer = asyncio.get_running_loop().call_later(self._max_delay_s, self.flush)
        if ticket is not None:
            batch.tickets.append(ticket)
        if texts:
            batch.texts.extend(texts)
        if historical:
            batch.uncached.update(historical)
            points = points + historical
        if points or texts:
            batch.points.extend(points)
            if device_id is not None and (site_id is not None or device_id not in batch.sites):
                batch.sites[device_id] = site_id
            if sites:  # devices the payload names: a known site is kept over None
                for device, site in sites.items():
                    if site is not None or device not in batch.sites:
                        batch.sites[device] = site
        if dead_letters:
            batch.dead_letters.extend(dead_letters)
        if len(batch.points) + len(batch.texts) >= self._max_points:
            self.flush()

    def flush(self) -> None:
        """Closes the current batch now, if there is one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._current = self._current, None
        if batch is not None:
            self._on_close(batch)
