"""The spool's writes, on a thread of their own.

A commit waits for the disk (``synchronous=FULL`` fsyncs the WAL), and a disk
stalls now and then for a quarter of a second or more. Run on the event loop,
that stall delays every Modbus poll, OPC UA read and PUBACK behind it; on a
thread it delays only the collector whose readings are being committed.

One thread, so the writes commit in the order they were asked for: ids are
given in that order, and a delete asked for after an append runs after it.
A write that was asked for is done even when the task that asked is
cancelled (``finish``): the agent's collectors are cancelled at shutdown,
and what they read must still reach the spool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from core.types import Point
from edge_agent.spool.sqlite import Spool

log = logging.getLogger("edge_agent.spool")

T = TypeVar("T")


class SpoolWriter:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-writer")

    def append(
        self, readings: Sequence[Point], state: Mapping[str, int] | None = None
    ) -> asyncio.Future[tuple[int, int]]:
        """``Spool.append`` on the writer thread; the future holds its result."""
        return self._run(self.spool.append, list(readings), dict(state or {}))

    def delete(self, ids: Iterable[int]) -> asyncio.Future[int]:
        """``Spool.delete``, nobody waiting: a delete that fails is logged, and
        its readings are sent again after a restart (the bridge stores them once)."""
        future = self._run(self.spool.delete, list(ids))
        future.add_done_callback(_log_failure("delete acknowledged readings"))
        return future

    def set_state(self, key: str, value: int) -> asyncio.Future[None]:
        future = self._run(self.spool.set_state, key, value)
        future.add_done_callback(_log_failure(f"save {key}"))
        return future

    def close(self) -> None:
        """Waits for the writes asked for, then stops the thread (the spool stays open)."""
        self._thread.shutdown(wait=True)

    def _run(self, call: Callable[..., T], *args: object) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._thread, call, *args)


async def finish(future: asyncio.Future[T]) -> T:
    """The write's result. Cancelling the caller does not cancel the write:
    it waits for the commit, then lets the cancellation through."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not future.done():
            await asyncio.wait([future])
        raise


def _log_failure(what: str) -> Callable[[asyncio.Future[T]], None]:
    def check(future: asyncio.Future[T]) -> None:
        if not future.cancelled() and (exc := future.exception()) is not None:
            log.error("the spool could not %s: %s", what, exc)

    return check
