"""Failures under load: a killed bridge, a database outage, a broker restart,
a Redis outage, a SIGTERM. After each, every published point is stored
exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import pytest

from bridge.cache.reader import CacheReader
from tests.conftest import Stack
from tests.integration.harness import (
    Background,
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    points_of_seed,
    running,
    seed_fleet,
    session_messages,
    stack_service,
    stored_points,
    wait_until,
)


def test_kill_9_mid_stream_then_restart_loses_nothing(
    scenario: Scenario, publisher: Publisher
) -> None:
    messages, expected = seed_fleet(scenario, devices=100, readings=60)
    bridge = BridgeProcess(scenario).start().wait_ready()
    try:
        load = Background(publisher, messages, rate=2000)
        wait_until(lambda: count_rows(scenario.db_url) > len(expected) // 4, 60, "ingest under way")
        bridge.kill()  # SIGKILL: no flush, no goodbye
        assert count_rows(scenario.db_url) < len(expected), "killed too late to mean anything"
        load.join()
        publisher.wait_acked()
    finally:
        bridge.kill()
    with running(BridgeProcess(scenario)) as again:
        again.wait_ready()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 90, "every point")
        wait_until(lambda: again.metrics()["bridge_inflight_messages"] == 0, 30, "acks")
        assert again.stop() == 0
    assert_exactly_once(scenario.db_url, expected)


def test_database_outage_of_30s_loses_nothing_and_memory_stays_bounded(
    scenario: Scenario, publisher: Publisher
) -> None:
    messages, expected = seed_fleet(scenario, devices=100, readings=150)
    with running(BridgeProcess(scenario, receive_maximum=1000)) as bridge:
        bridge.wait_ready()
        load = Background(publisher, messages, rate=500)
        wait_until(lambda: count_rows(scenario.db_url) > 3000, 60, "ingest under way")
        baseline = bridge.rss_mb()
        stack_service("down", "postgres")
        try:
            peak, inflight_peak = baseline, 0.0
            outage_ends = time.monotonic() + 30
            while time.monotonic() < outage_ends:  # the outage itself: 30 s, by design
                peak = max(peak, bridge.rss_mb())
                inflight_peak = max(inflight_peak, bridge.metrics()["bridge_inflight_messages"])
                assert not bridge.exited(), bridge.log()[-2000:]
                time.sleep(0.5)
            assert not bridge.ready(), "readyz must fail while the database is down"
        finally:
            stack_service("up", "postgres")
        load.join()
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 120, "ingest resumed")
        wait_until(bridge.ready, 30, "ready again")
        # Bounded: at most Receive Maximum messages held; the rest waited at the broker.
        assert inflight_peak <= 1000
        assert peak - baseline < 100, f"RSS grew {peak - baseline:.0f} MB during the outage"
        retries = sum(
            v for k, v in bridge.metrics().items() if k.startswith("bridge_db_retries_total")
        )
        assert retries > 0, "the outage should have been retried"
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)


def test_broker_restart_under_load_loses_nothing(scenario: Scenario, publisher: Publisher) -> None:
    messages, expected = seed_fleet(scenario, devices=50, readings=100)
    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        load = Background(publisher, messages, rate=1000)
        wait_until(lambda: count_rows(scenario.db_url) > 2000, 60, "ingest under way")
        stack_service("down", "mosquitto")
        wait_until(lambda: not bridge.ready(), 10, "bridge to notice")
        stack_service("up", "mosquitto")
        load.join()
        publisher.wait_acked(timeout=120)
        with contextlib.suppress(
            AssertionError
        ):  # if it times out, the count below says what is missing
            wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "every point")
        assert_exactly_once(scenario.db_url, expected)
        wait_until(bridge.ready, 30, "reconnected")
        assert bridge.metrics()["bridge_mqtt_reconnects_total"] >= 1
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)


def test_redis_outage_never_stops_ingest_and_the_cache_refills(
    scenario: Scenario, publisher: Publisher, stack: Stack
) -> None:
    first, expected_first = seed_fleet(scenario, devices=20, readings=10)
    later_start = time.time_ns() // 1000 - 60_000_000
    second, expected_second = seed_fleet(scenario, devices=20, readings=5, start_us=later_start)
    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        stack_service("down", "redis")
        try:
            publisher.publish_all(first)
            publisher.wait_acked()
            wait_until(
                lambda: count_rows(scenario.db_url) >= len(expected_first),
                60,
                "ingest without Redis",
            )
            assert bridge.ready(), "Redis is not needed to be ready"
        finally:
            stack_service("up", "redis")
        errors = sum(
            v for k, v in bridge.metrics().items() if k.startswith("bridge_redis_errors_total")
        )
        assert errors > 0
        publisher.publish_all(second)
        publisher.wait_acked()
        device = f"{scenario.tag}-dev0000"
        newest = max(t for d, m, t in expected_second if d == device)

        async def latest() -> dict[str, tuple[int, str]]:
            async with CacheReader(stack.redis_url, prefix=f"{scenario.tag}:") as cache:
                return await cache.latest(device)

        wait_until(
            lambda: asyncio.run(latest()).get("flow_rate", (0, ""))[0] == newest,
            30,
            "cache refilled",
        )
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected_first | expected_second)


@pytest.mark.parametrize("grace", [15])
def test_sigterm_under_load_exits_cleanly_and_everything_acked_is_stored(
    scenario: Scenario, publisher: Publisher, stack: Stack, grace: int
) -> None:
    messages, expected = seed_fleet(scenario, devices=100, readings=50)
    bridge = BridgeProcess(scenario, grace_s=grace).start().wait_ready()
    try:
        load = Background(publisher, messages, rate=2000)
        wait_until(lambda: count_rows(scenario.db_url) > len(expected) // 4, 60, "ingest under way")
        started = time.monotonic()
        bridge.signal(signal.SIGTERM)
        assert bridge.wait_exit(timeout=grace + 5) == 0
        assert time.monotonic() - started < grace
        assert "stopped" in bridge.log()
        load.join()
        publisher.wait_acked()
    finally:
        bridge.kill()
    # Whatever the bridge acked must be in the database; whatever it did not
    # ack waits in its session. Together: everything, nothing lost.
    present, queued = session_messages(stack, f"{scenario.client_id}-0")
    assert present
    stored = set(stored_points(scenario.db_url))
    assert expected <= stored | points_of_seed(queued)
    # And a restart stores the rest, exactly once.
    with running(BridgeProcess(scenario)) as again:
        again.wait_ready()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "the rest")
        assert again.stop() == 0
    assert_exactly_once(scenario.db_url, expected)
