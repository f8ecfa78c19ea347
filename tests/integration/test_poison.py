"""A row the database refuses for good costs only itself, never its batch-mates."""

from __future__ import annotations

import asyncio
import signal

import asyncpg

from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    seed_fleet,
    seed_message,
    wait_until,
)


def test_a_poison_row_is_dead_lettered_alone(scenario: Scenario, publisher: Publisher) -> None:
    async def forbid_666() -> None:
        conn = await asyncpg.connect(scenario.db_url)
        try:  # stands for any rule the database enforces and the codecs do not know
            await conn.execute("ALTER TABLE telemetry ADD CONSTRAINT no_666 CHECK (value <> 666)")
        finally:
            await conn.close()

    asyncio.run(forbid_666())
    messages, expected = seed_fleet(scenario, devices=20, readings=10)
    device = f"{scenario.tag}-dev0000"
    t = max(t for d, _, t in expected if d == device) + 1
    # One message with a poison point and a good one, in the middle of the stream.
    messages.insert(
        len(messages) // 2,
        (scenario.topic("site0", device), seed_message(device, t, {"good": 1.0, "evil": 666.0})),
    )
    expected.add((device, "good", t))
    with running(BridgeProcess(scenario, max_delay_ms=500)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages)
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "every good point")
        wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 20, "all acked")
        assert bridge.metrics()['bridge_points_rejected_total{reason="db_rejected"}'] == 1
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)
    assert (
        count_rows(
            scenario.db_url,
            "SELECT count(*) FROM rejected_messages WHERE reason = 'db_rejected' "
            "AND detail LIKE '%no_666%' AND topic LIKE '%/evil'",
        )
        == 1
    )


def test_a_second_signal_exits_at_once(scenario: Scenario, publisher: Publisher) -> None:
    # No database at all: what the bridge takes can never be committed, so a
    # graceful stop would wait out its 60 s grace.
    scenario.db_url = "postgresql://postgres@127.0.0.1:1/none"
    bridge = BridgeProcess(scenario, grace_s=60)
    with running(bridge):
        wait_until(lambda: bridge.get("/healthz")[0] == 200, 30, "bridge up")
        wait_until(lambda: b'"mqtt": true' in bridge.get("/readyz")[1], 30, "subscribed")
        messages, _ = seed_fleet(scenario, devices=1, readings=1)
        publisher.publish_all(messages)
        wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 1, 10, "one taken")
        bridge.signal(signal.SIGTERM)
        wait_until(lambda: "stopping" in bridge.log(), 10, "graceful stop begun")
        assert not bridge.exited()
        bridge.signal(signal.SIGTERM)
        assert bridge.wait_exit(10) == 1
