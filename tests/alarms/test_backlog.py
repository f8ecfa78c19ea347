"""The evaluator on a stream that already holds a long backlog (it was down,
or started after the workers): it judges it in bounded steps and lets the
event loop run every few hundred points, so the points evaluated grow chunk
by chunk and its /metrics answers meanwhile, where it used to read the whole
backlog within reorder_s and judge it in one synchronous block (a bench
run's evaluator reported 0 of 2,400,000 points after 180 s, and its MQTT
session timed out), and later judged 20,000 points between two turns (5 s
with outlier rules over 10 Hz series: the bench's scrape timed out again).
Meanwhile bridge_alarm_behind_seconds says how far behind it is, by the
entries' times (here one a second), down to 0 once it has caught up."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import orjson
import redis.asyncio as aioredis

from bridge.alarms import service
from bridge.alarms.service import Evaluator
from tests.alarms.harness import in_process_settings, running, store_rules
from tests.conftest import Stack

ENTRIES, PER_ENTRY = 120, 1000  # 120,000 points: six judging steps or more


async def _go(stack: Stack, db_url: str, redis_url: str) -> tuple[list[float], list[float]]:
    rule = {"name": "never", "kind": "threshold", "direction": "above", "threshold": 1e12}
    await store_rules(db_url, [rule | {"select": {"metric": "temp"}}])
    prefix = f"backlog{uuid.uuid4().hex[:6]}:"
    settings = in_process_settings(stack, db_url, redis_url, prefix, reorder_s=0.1)
    client = aioredis.Redis.from_url(redis_url)
    t = 1_800_000_000_000_000
    first_ms = 1_700_000_000_000
    try:
        for e in range(ENTRIES):
            rows = [
                [t + e * PER_ENTRY + i, f"d{i % 50}", "s", "temp", 1.0] for i in range(PER_ENTRY)
            ]
            entry = f"{first_ms + e * 1000}-0"  # as if the workers wrote one a second
            await client.xadd(prefix + "alarms:points", {"p": orjson.dumps(rows)}, id=entry)
        evaluator = Evaluator(settings)
        seen: list[float] = []
        behind: list[float] = []
        total = ENTRIES * PER_ENTRY
        sample = evaluator.registry.get_sample_value
        async with running(evaluator) as task, asyncio.timeout(90):
            while not seen or seen[-1] < total or behind[-1] > 0:
                value = sample("bridge_alarm_points_total") or 0.0
                if not seen or value != seen[-1]:
                    seen.append(value)
                behind.append(sample("bridge_alarm_behind_seconds") or 0.0)
                assert not task.done(), task
                await asyncio.sleep(0.005)  # runs only when the evaluator lets the loop go
        return seen, behind
    finally:
        await client.delete(prefix + "alarms:points")
        await client.aclose()


def test_a_backlog_is_judged_in_bounded_steps(stack: Stack, plain_db: str, redis_url: str) -> None:
    seen, behind = asyncio.run(asyncio.wait_for(_go(stack, plain_db, redis_url), 120))
    assert seen[-1] == ENTRIES * PER_ENTRY  # every point, once
    assert max(behind) >= ENTRIES - 1 - service.JUDGE_POINTS // PER_ENTRY  # seconds
    assert behind[-1] == 0
    steps = [b - a for a, b in itertools.pairwise(seen)]
    # The loop gets a turn every OBSERVE_CHUNK points judged, so a look (every
    # 5 ms) sees part of a step, never a whole one at once.
    assert len(steps) >= 2 * ENTRIES * PER_ENTRY // service.JUDGE_POINTS
    assert max(steps) < service.JUDGE_POINTS // 2
