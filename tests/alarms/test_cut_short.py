"""A rule whose window needs more samples than alarms.max_samples keeps (a
stuck rule over an hour of 10 Hz points needs 36,000) is judged on the
newest max_samples only and can never reach back its whole duration. The
evaluator says so: a warning naming the rule, once, and a counter of the
points judged that way, where it used to stay silent and never fire."""

from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
import pytest
import redis.asyncio as aioredis

from bridge.alarms.service import Evaluator
from tests.alarms.harness import in_process_settings, running, store_rules
from tests.conftest import Stack

POINTS, KEPT = 150, 20  # one a second: the rule's 100 s need 101 samples


async def _go(stack: Stack, db_url: str, redis_url: str, name: str, metric: str) -> Evaluator:
    await store_rules(
        db_url, [{"name": name, "kind": "stuck", "for_s": 100, "select": {"metric": metric}}]
    )
    prefix = f"cut{uuid.uuid4().hex[:6]}:"
    settings = in_process_settings(
        stack, db_url, redis_url, prefix, reorder_s=0.1, max_samples=KEPT
    )
    client = aioredis.Redis.from_url(redis_url)
    t = 1_800_000_000_000_000
    try:
        rows = [[t + i * 1_000_000, "pump-1", "s", metric, 7.0] for i in range(POINTS)]
        await client.xadd(prefix + "alarms:points", {"p": orjson.dumps(rows)})
        evaluator = Evaluator(settings)
        async with running(evaluator) as task, asyncio.timeout(60):
            while evaluator.registry.get_sample_value("bridge_alarm_points_total") != POINTS:
                assert not task.done(), task
                await asyncio.sleep(0.05)
        return evaluator
    finally:
        await client.delete(prefix + "alarms:points")
        await client.aclose()


def test_a_window_cut_short_by_max_samples_is_said_and_counted(
    stack: Stack, plain_db: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name, metric = f"stuck-{uuid.uuid4().hex[:6]}", f"m{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="bridge.alarms"):
        evaluator = asyncio.run(_go(stack, plain_db, redis_url, name, metric))
    sample = evaluator.registry.get_sample_value
    assert sample("bridge_alarm_points_cut_short_total") == POINTS - KEPT
    assert sample("bridge_alarm_points_too_late_total") == 0
    assert sample("bridge_alarm_series_refused_total") == 0
    said = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(said) == 1, said
    assert f"alarms.max_samples ({KEPT})" in said[0]
    assert "raise alarms.max_samples" in said[0]
    # and the constant series was never judged stuck: its window never reached 100 s
    assert not any(s.open for s in evaluator.engine.series.values())
