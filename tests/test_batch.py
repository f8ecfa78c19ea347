"""The batcher: size and time policy; a message is never split."""

from __future__ import annotations

import asyncio

from bridge.ack import AckTracker
from bridge.batch import Batch, Batcher
from core.types import Point


def pts(n: int, device: str = "d") -> list[Point]:
    return [Point(i, device, "m", float(i)) for i in range(n)]


async def test_a_batch_closes_at_max_points_without_splitting_a_message() -> None:
    closed: list[Batch] = []
    batcher = Batcher(max_points=10, max_delay_s=60, on_close=closed.append)
    tracker = AckTracker()
    batcher.add(tracker.track(1), pts(6), [], "d", "s")
    assert closed == []
    batcher.add(tracker.track(2), pts(6), [], "d", None)  # 12 >= 10: closes, whole
    assert len(closed) == 1
    assert len(closed[0].points) == 12
    assert [t.mid for t in closed[0].tickets] == [1, 2]
    assert closed[0].sites == {"d": "s"}  # a later message without a site keeps the known one


async def test_a_batch_closes_after_max_delay() -> None:
    closed: list[Batch] = []
    batcher = Batcher(max_points=1000, max_delay_s=0.05, on_close=closed.append)
    batcher.add(None, pts(3), [], "d", None)
    deadline = asyncio.get_running_loop().time() + 5
    while not closed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(closed) == 1
    assert len(closed[0].points) == 3


async def test_flush_closes_the_current_batch_and_cancels_its_timer() -> None:
    closed: list[Batch] = []
    batcher = Batcher(max_points=1000, max_delay_s=0.05, on_close=closed.append)
    batcher.add(None, pts(1), [], "d", None)
    batcher.flush()
    batcher.flush()  # nothing open: no empty batch
    await asyncio.sleep(0.1)
    assert len(closed) == 1


async def test_historical_points_are_batched_to_be_stored_and_not_cached() -> None:
    closed: list[Batch] = []
    batcher = Batcher(max_points=1000, max_delay_s=60, on_close=closed.append)
    live, old = pts(2), [Point(1, "d", "old", 9.0)]
    batcher.add(None, live, [], "d", None, historical=old)
    batcher.flush()
    [batch] = closed
    assert batch.points == [*live, *old]
    assert batch.uncached == set(old)
