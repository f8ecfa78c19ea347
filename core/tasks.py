"""Stopping background tasks for good.

Python 3.11's ``asyncio.wait_for`` (used inside the database, Redis and MQTT
clients) can swallow a cancellation that arrives as the operation it waits
on completes; the task then goes on and may wait for work for ever. So a
task is cancelled again, round after round, until it is done: a clean-clone
CI run once hung 300 s on a single cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], round_s: float = 1.0) -> None:
    """Cancels every task, again every ``round_s`` until each is done. What a
    task raised stays on it (``task.exception()``), marked as retrieved."""
    every = list(tasks)
    pending = {t for t in every if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=round_s)
    for task in every:
        if not task.cancelled():
            task.exception()  # retrieved: the caller reports it, or it was expected
