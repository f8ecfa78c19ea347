"""Series reads across the seam between Redis and PostgreSQL, against both,
seeded through the bridge's own sinks. Whatever each source holds, a read
must equal what the database holds: no gap, no duplicate."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bridge.api import store
from bridge.api.series import SeriesQuery, Step, TooManyPoints
from bridge.api.store import SeriesBucket
from bridge.batch import Batch
from bridge.cache.reader import CacheReader
from bridge.config import DatabaseSettings
from bridge.sink.timescale import TimescaleSink
from core.types import Point
from tests.api.conftest import DEVICE, HOUR, MINUTE, WINDOW_S, S, World, set_marker


async def read(w: World, start: int, end: int, step: Step = "auto", **kw: object):  # type: ignore[no-untyped-def]
    q = SeriesQuery(DEVICE, None, start, end, step)
    return await w.reader(**kw).read(w.conn, q, w.now_us)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start_ago", "end_ago"),
    [(3600, 0), (600, 0), (900, 300), (7200, 1800), (905, 895), (30, 0)],
)
async def test_raw_reads_equal_the_database_wherever_the_seam_falls(
    world: World, start_ago: int, end_ago: int
) -> None:
    start, end = world.now_us - start_ago * S, world.now_us - end_ago * S
    result = await read(world, start, end)
    assert result.resolution == "raw"
    assert result.raw == world.truth(start, end)
    seam = world.now_us - WINDOW_S * S + 10 * S
    assert result.cache == ("hit" if end > seam else "miss")


async def test_a_range_inside_the_window_comes_from_redis_alone(world: World) -> None:
    start, end = world.now_us - 10 * MINUTE, world.now_us
    async with TimescaleSink(DatabaseSettings(url=world.db_url)) as db:
        # A point only the database has, inside the cache's part of the range:
        # it must not show, proving the database was not asked for that part.
        await db.write(Batch(points=[Point(world.now_us - 5 * MINUTE + 1, DEVICE, "pip", 1.0)]))
    result = await read(world, start, end)
    assert result.cache == "hit"
    assert result.raw == world.truth(start, end)


async def test_points_the_cache_missed_come_from_the_database(world: World, redis_url: str) -> None:
    # Redis lost everything before 8 minutes ago (an outage); its writers then
    # vouched only from then on.
    client = aioredis.Redis.from_url(redis_url)
    try:
        for metric in ("flow_rate", "pip"):
            await client.zremrangebyscore(
                f"bridge:recent:{DEVICE}|{metric}", "-inf", world.now_us - 8 * MINUTE - 1
            )
    finally:
        await client.aclose()
    await set_marker(redis_url, world.now_us - 8 * MINUTE)
    start, end = world.now_us - HOUR, world.now_us
    result = await read(world, start, end)
    assert result.cache == "hit"
    assert result.raw == world.truth(start, end)


async def test_no_marker_means_no_cache(world: World, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.delete("bridge:complete_since")  # Redis lost its data
        await client.delete(f"bridge:recent:{DEVICE}|pip")
    finally:
        await client.aclose()
    start, end = world.now_us - 10 * MINUTE, world.now_us
    result = await read(world, start, end)
    assert result.cache == "miss"
    assert result.raw == world.truth(start, end)


async def test_redis_down_reads_everything_from_the_database(world: World) -> None:
    async with CacheReader("redis://127.0.0.1:1/0", timeout_s=0.5) as dead:
        start, end = world.now_us - HOUR, world.now_us
        result = await read(world, start, end, cache=dead)
    assert result.cache == "unavailable"
    assert result.raw == world.truth(start, end)


def reference_buckets(
    truth: dict[str, list[tuple[int, float]]], width: int
) -> dict[str, list[SeriesBucket]]:
    """Buckets of the raw points, computed here from the test's own record."""
    out: dict[str, list[SeriesBucket]] = {}
    for metric, points in truth.items():
        by_start: dict[int, list[float]] = {}
        for t, v in points:
            by_start.setdefault(t // width * width, []).append(v)
        out[metric] = [
            (start, sum(vs) / len(vs), min(vs), max(vs), len(vs))
            for start, vs in sorted(by_start.items())
        ]
    return out


def assert_buckets_equal(
    got: dict[str, list[SeriesBucket]], want: dict[str, list[SeriesBucket]]
) -> None:
    assert sorted(got) == sorted(want)
    for metric, buckets in want.items():
        assert [b[0] for b in got[metric]] == [b[0] for b in buckets], metric
        for (_, g_avg, *g_rest), (_, w_avg, *w_rest) in zip(got[metric], buckets, strict=True):
            assert g_rest == w_rest  # min, max, count
            assert g_avg == pytest.approx(w_avg, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("span_h", "step"), [(24, "auto"), (3, "1m"), (3, "1h"), (48, "auto")])
async def test_rollups_across_the_seam_equal_buckets_of_the_raw_rows(
    world: World, span_h: int, step: Step
) -> None:
    start, end = world.now_us - span_h * HOUR, world.now_us
    result = await read(world, start, end, step)
    width = MINUTE if result.resolution == "1m" else HOUR
    assert result.resolution == ({"auto": "1m" if span_h <= 33 else "1h"}.get(step, step))
    first = start // width * width
    last = -(-end // width) * width
    assert_buckets_equal(result.buckets, reference_buckets(world.truth(first, last), width))
    if result.resolution == "1m":
        assert result.cache == "hit"


async def test_auto_falls_back_to_minutes_when_raw_rows_would_be_too_many(world: World) -> None:
    start, end = world.now_us - 2 * HOUR, world.now_us
    result = await read(world, start, end, series_points=500)  # 720 raw points per series
    assert result.resolution == "1m"
    with pytest.raises(TooManyPoints):
        await read(world, world.now_us - 3 * HOUR, end, "raw", series_points=100)


async def test_auto_goes_to_minutes_when_the_recent_rate_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 s spacing: the Redis part (15 min) holds ~90 points a series, which
    # over 90 min is ~540, more than 400: minutes, without reading raw rows.
    raw_reads: list[object] = []
    real_raw = store.raw

    async def counted(*args: object, **kw: object):  # type: ignore[no-untyped-def]
        raw_reads.append(args)
        return await real_raw(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "raw", counted)
    start, end = world.now_us - 90 * MINUTE, world.now_us
    result = await read(world, start, end, series_points=400)
    assert result.resolution == "1m"
    assert raw_reads == []
    # Over 1 h the same rate gives 360 a series: raw, read from both sources.
    start = world.now_us - HOUR
    result = await read(world, start, end, series_points=400)
    assert result.resolution == "raw"
    assert result.raw == world.truth(start, end)
    assert len(raw_reads) == 1
