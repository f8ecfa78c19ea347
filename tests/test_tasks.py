"""cancel_and_wait stops a task that swallows a cancellation, as Python
3.11's asyncio.wait_for can, and leaves what a task raised on the task."""

from __future__ import annotations

import asyncio

import pytest

from core.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0
    forever = asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await forever.wait()
            except asyncio.CancelledError:
                if swallowed == 2:
                    raise
                swallowed += 1  # carry on waiting for work, as if nothing happened

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], round_s=0.05), 10)
    assert task.cancelled()
    assert swallowed == 2


async def test_what_a_task_raised_stays_on_it() -> None:
    async def failing() -> None:
        raise ValueError("boom")

    async def idle() -> None:
        await asyncio.Event().wait()

    failed = asyncio.create_task(failing())
    waiting = asyncio.create_task(idle())
    await asyncio.sleep(0)
    await cancel_and_wait([failed, waiting])
    assert waiting.cancelled()
    with pytest.raises(ValueError, match="boom"):
        raise failed.exception() or AssertionError("no exception kept")
