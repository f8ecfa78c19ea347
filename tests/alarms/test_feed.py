"""The workers' feed on real PostgreSQL and Redis: only committed points of
metrics some rule selects reach the stream (the refused ones never), one
entry per batch, and nothing when no rule wants anything."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from bridge.alarms.feed import AlarmFeed
from bridge.batch import Batch
from bridge.commit import CommitResult
from bridge.config import DatabaseSettings, RedisSettings, Settings
from core.types import DeadLetter, Point
from tests.alarms.harness import store_rules


async def _run(db_url: str, redis_url: str, rules: list[dict[str, object]]) -> list[list[object]]:
    await store_rules(db_url, rules)
    prefix = f"feed{uuid.uuid4().hex[:6]}:"
    settings = Settings(  # type: ignore[call-arg]
        database=DatabaseSettings(url=db_url),  # type: ignore[call-arg]
        redis=RedisSettings(url=redis_url, prefix=prefix),  # type: ignore[call-arg]
    )
    t = 1_800_000_000_000_000
    temp = [Point(t + i, "pump-1", "temp", float(i)) for i in range(3)]
    flow = [Point(t + i, "pump-1", "flow", float(i)) for i in range(3)]
    refused = (temp[1], DeadLetter(t, "x", "db_rejected", "refused", b"", 0))
    async with AlarmFeed(settings, CollectorRegistry()) as feed:
        task = asyncio.create_task(feed.run())
        feed.put(Batch(points=temp + flow, sites={"pump-1": "s1"}), CommitResult(refused=[refused]))
        feed.put(Batch(points=flow, sites={"pump-1": "s1"}), CommitResult())
        while not feed.idle:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(prefix + "alarms:points")
        await client.delete(prefix + "alarms:points")
    finally:
        await client.aclose()
    return [orjson.loads(fields[b"p"]) for _, fields in entries]


def test_only_committed_points_of_selected_metrics(plain_db: str, redis_url: str) -> None:
    rule = {
        "name": "hot",
        "kind": "threshold",
        "direction": "above",
        "threshold": 1.0,
        "select": {"metric": "temp"},
    }
    (entry,) = asyncio.run(_run(plain_db, redis_url, [rule]))  # the flow-only batch sends nothing
    t = 1_800_000_000_000_000
    assert entry == [[t, "pump-1", "s1", "temp", 0.0], [t + 2, "pump-1", "s1", "temp", 2.0]]


def test_no_rules_no_entries(plain_db: str, redis_url: str) -> None:
    assert asyncio.run(_run(plain_db, redis_url, [])) == []
