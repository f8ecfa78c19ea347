"""Capped exponential backoff with jitter, for every retry loop of the
bridge (the MQTT session's reconnects, the committer's database retries).

Each delay is drawn uniformly from [d/2, d], where d starts at ``first`` and
doubles up to ``cap``; ``reset`` after a success. The jitter spreads the
retries of many workers that lost the same server at the same moment.
"""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff; each delay drawn from the upper half."""

    def __init__(self, first: float, cap: float) -> None:
        self._first, self._cap, self._next = first, cap, first

    def reset(self) -> None:
        self._next = self._first

    def delay(self) -> float:
        current = self._next
        self._next = min(self._cap, self._next * 2)
        return random.uniform(current / 2, current)  # noqa: S311 - jitter, not crypto
