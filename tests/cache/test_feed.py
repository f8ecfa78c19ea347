"""The cache feed against a real Redis: a full queue skips a batch and the
writer's complete_since moves past it, batches that waited go out in one
write, and a failed write is reported without stopping the feed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from bridge.cache.feed import MERGE_UP_TO, CacheFeed
from bridge.cache.reader import CacheReader
from bridge.cache.writer import CacheWriter
from bridge.errors import RedisUnavailable
from core.types import Point
from tests.cache.test_cache import FOREVER, S, free_port


@contextlib.asynccontextmanager
async def running(feed: CacheFeed) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_full_queue_skips_a_batch_and_waiting_batches_go_out_together(
    redis_url: str,
) -> None:
    # Ahead of the writer's own claim (its start, no skew), so the marker shows the skip.
    t = time.time_ns() // 1000 + 3600 * S
    written = asyncio.Event()
    writes: list[None] = []
    errors: list[tuple[str, RedisUnavailable | None]] = []

    def on_written(_: float) -> None:
        writes.append(None)
        written.set()

    async with (
        CacheWriter(redis_url, future_skew_s=0) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(writer, 2, on_written, lambda reason, exc: errors.append((reason, exc)))
        # The feed has not run yet: the third batch finds two waiting.
        feed.put([Point(t, "d", "m", 1.0)])
        feed.put([Point(t + S, "d", "m", 2.0)])
        feed.put([Point(t + 5 * S, "d", "m", 3.0), Point(t + 4 * S, "e", "m", 4.0)])
        assert errors == [("backlog", None)]
        assert not feed.idle
        async with running(feed):
            await asyncio.wait_for(written.wait(), 10)
        assert feed.idle
        assert len(writes) == 1  # the two waiting batches, in one call
        assert await reader.recent("d", "m", 0, FOREVER) == [(t, "1.0"), (t + S, "2.0")]
        assert await reader.latest("e") == {}
        # Readers take everything up to the skipped batch's newest point from the database.
        assert await reader.complete_since() == t + 5 * S + 1


async def test_the_queue_is_bounded_by_points_too(redis_url: str) -> None:
    t = time.time_ns() // 1000 + 3600 * S
    written = asyncio.Event()
    errors: list[tuple[str, RedisUnavailable | None]] = []
    async with (
        CacheWriter(redis_url, future_skew_s=0) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer,
            64,
            lambda _: written.set(),
            lambda reason, exc: errors.append((reason, exc)),
            max_points=3,
        )
        feed.put([Point(t, "p", "m", 1.0), Point(t + S, "p", "m", 2.0)])
        feed.put([Point(t + 2 * S, "p", "m", 3.0), Point(t + 3 * S, "p", "m", 4.0)])  # 4 > 3
        assert errors == [("backlog", None)]
        feed.put([Point(t + 4 * S, "p", "m", 5.0)])  # 3 fit
        assert errors == [("backlog", None)]
        async with running(feed):
            await asyncio.wait_for(written.wait(), 10)
        assert feed.idle
        assert await reader.recent("p", "m", 0, FOREVER) == [
            (t, "1.0"),
            (t + S, "2.0"),
            (t + 4 * S, "5.0"),
        ]
        # One batch larger than the bound is taken when nothing waits.
        written.clear()
        feed.put([Point(t + (5 + k) * S, "q", "m", float(k)) for k in range(5)])
        assert errors == [("backlog", None)]
        async with running(feed):
            await asyncio.wait_for(written.wait(), 10)
        assert len(await reader.recent("q", "m", 0, FOREVER)) == 5


async def test_a_failed_write_is_reported_and_the_feed_goes_on() -> None:
    errors: asyncio.Queue[tuple[str, RedisUnavailable | None]] = asyncio.Queue()
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    async with CacheWriter(url, timeout_s=1.0) as writer:
        feed = CacheFeed(writer, 4, on_error=lambda reason, exc: errors.put_nowait((reason, exc)))
        async with running(feed):
            for k in range(2):
                feed.put([Point(k * S, "d", "m", 1.0)])
                reason, exc = await asyncio.wait_for(errors.get(), 10)
                assert reason == "unavailable"
                assert isinstance(exc, RedisUnavailable)
                assert "start Redis or fix redis.url" in str(exc)


async def test_under_a_backlog_writes_start_at_most_once_per_interval(redis_url: str) -> None:
    t = time.time_ns() // 1000
    writes: asyncio.Queue[None] = asyncio.Queue()
    async with (
        CacheWriter(redis_url) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer, 8, lambda _: writes.put_nowait(None), interval_s=0.5, backlog=lambda: True
        )
        async with running(feed):
            feed.put([Point(t, "d", "m", 1.0)])  # after a quiet spell: at once
            await asyncio.wait_for(writes.get(), 10)
            # Within the interval of that write: both wait for the next one, together.
            feed.put([Point(t + 1, "d", "m", 2.0)])
            feed.put([Point(t + 2, "e", "m", 3.0)])
            await asyncio.sleep(0)  # the feed takes the first of them, and holds it
            assert not feed.idle
            await asyncio.wait_for(writes.get(), 10)
            assert feed.idle
            assert writes.empty()
        assert await reader.recent("d", "m", 0, FOREVER) == [(t, "1.0"), (t + 1, "2.0")]
        assert await reader.latest("e") == {"m": (t + 2, "3.0")}


async def test_under_a_backlog_writes_keep_to_their_share_of_the_time(redis_url: str) -> None:
    # A write of many series (each its own keys: what a large fleet costs),
    # then one more batch at once: under a backlog it waits until the first
    # write's time is a tenth of the time since it began.
    t = time.time_ns() // 1000
    share = 0.1
    took: asyncio.Queue[tuple[float, float]] = asyncio.Queue()
    async with (
        CacheWriter(redis_url) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer,
            8,
            lambda seconds: took.put_nowait((seconds, time.monotonic())),
            backlog=lambda: True,
            window_in_backlog=False,
            backlog_share=share,
            steady=0.0,
        )
        async with running(feed):
            began = time.monotonic()  # the first write begins no earlier
            feed.put([Point(t, f"dev-{k}", "m", float(k)) for k in range(5_000)])
            first, _ = await asyncio.wait_for(took.get(), 30)
            feed.put([Point(t + 1, "late", "m", 1.0)])
            _, second_done = await asyncio.wait_for(took.get(), 30 + first / share)
        assert first > 0
        assert second_done - began >= first / share
        assert await reader.latest("dev-4999") == {"m": (t, "4999.0")}
        assert await reader.latest("late") == {"m": (t + 1, "1.0")}


async def test_under_a_backlog_latest_values_take_everything_waiting_in_one_write(
    redis_url: str,
) -> None:
    # 30,000 points waiting, past a windowed write's merge limit and a script
    # call's size: one write of each series' newest point takes them all.
    t = time.time_ns() // 1000
    series = 2_000
    rounds = 15
    assert series * rounds > MERGE_UP_TO
    took: list[float] = []
    written = asyncio.Event()
    async with (
        CacheWriter(redis_url) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer,
            64,
            lambda seconds: (took.append(seconds), written.set()),
            backlog=lambda: True,
            window_in_backlog=False,
        )
        for r in range(rounds):
            feed.put([Point(t + r, f"s{k}", "m", float(r)) for k in range(series)])
        async with running(feed):
            await asyncio.wait_for(written.wait(), 30)
            idle_after_one_write = feed.idle
        assert idle_after_one_write
        assert len(took) == 1
        for k in (0, series // 2, series - 1):
            assert await reader.latest(f"s{k}") == {"m": (t + rounds - 1, f"{rounds - 1}.0")}


async def test_a_backlog_not_yet_steady_does_not_space_the_writes(redis_url: str) -> None:
    # As above, but the backlog is not steady yet (two looks at it): the
    # second write follows the first without waiting out the share.
    t = time.time_ns() // 1000
    share = 0.01
    took: asyncio.Queue[float] = asyncio.Queue()
    async with (
        CacheWriter(redis_url) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer,
            8,
            took.put_nowait,
            backlog=lambda: True,
            window_in_backlog=False,
            backlog_share=share,
            steady=1.0,
        )
        async with running(feed):
            feed.put([Point(t, f"dev-{k}", "m", float(k)) for k in range(5_000)])
            first = await asyncio.wait_for(took.get(), 30)
            after_first = time.monotonic()
            feed.put([Point(t + 1, "late", "m", 1.0)])
            await asyncio.wait_for(took.get(), 30)
            second_after = time.monotonic() - after_first
        assert second_after < first / share / 2
        assert await reader.latest("late") == {"m": (t + 1, "1.0")}


def test_a_share_outside_zero_to_one_is_refused() -> None:
    for share in (0.0, -1.0, 1.5):
        with pytest.raises(ValueError, match="backlog_share"):
            CacheFeed(CacheWriter("redis://127.0.0.1:1/0"), 8, backlog_share=share)


async def test_without_a_backlog_each_batch_goes_out_at_once(redis_url: str) -> None:
    t = time.time_ns() // 1000
    writes: asyncio.Queue[None] = asyncio.Queue()
    async with (
        CacheWriter(redis_url) as writer,
        CacheReader(redis_url) as reader,
    ):
        # An interval of an hour that must not apply: nothing waits for the database.
        feed = CacheFeed(
            writer, 8, lambda _: writes.put_nowait(None), interval_s=3600, backlog=lambda: False
        )
        async with running(feed):
            for k in range(3):
                feed.put([Point(t + k, "d", "m", float(k))])
                await asyncio.wait_for(writes.get(), 30)
        assert [ts for ts, _ in await reader.recent("d", "m", 0, FOREVER)] == [t, t + 1, t + 2]


async def test_under_a_backlog_without_the_window_only_latest_values_are_written(
    redis_url: str,
) -> None:
    # Ahead of the writer's own claim (its start plus the skew), so the marker shows the move.
    t = time.time_ns() // 1000 + 3600 * S
    backlog = [True]
    writes: asyncio.Queue[None] = asyncio.Queue()
    async with (
        CacheWriter(redis_url, future_skew_s=0) as writer,
        CacheReader(redis_url) as reader,
    ):
        feed = CacheFeed(
            writer,
            8,
            lambda _: writes.put_nowait(None),
            backlog=lambda: backlog[0],
            window_in_backlog=False,
        )
        async with running(feed):
            feed.put([Point(t + 2 * S, "d", "m", 2.0), Point(t, "d", "m", 1.0)])
            feed.put([Point(t + S, "e", "m", 3.0)])
            await asyncio.wait_for(writes.get(), 10)
            if not feed.idle:  # the second batch went out on its own
                await asyncio.wait_for(writes.get(), 10)
            assert await reader.latest("d") == {"m": (t + 2 * S, "2.0")}
            assert await reader.latest("e") == {"m": (t + S, "3.0")}
            assert set(await reader.devices()) == {"d", "e"}
            assert await reader.recent("d", "m", 0, FOREVER) == []
            # Readers take everything up to the newest point left out from the database.
            assert await reader.complete_since() == t + 2 * S + 1
            # The backlog gone, the window is written again.
            backlog[0] = False
            feed.put([Point(t + 3 * S, "d", "m", 4.0)])
            await asyncio.wait_for(writes.get(), 10)
        assert await reader.recent("d", "m", 0, FOREVER) == [(t + 3 * S, "4.0")]
        assert await reader.latest("d") == {"m": (t + 3 * S, "4.0")}
        assert await reader.complete_since() == t + 2 * S + 1
