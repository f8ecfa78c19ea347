"""A row the database refuses for good costs only itself, never its batch-mates,
and comes out the same whichever route (MQTT, HTTP ingest) brought it."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg

from tests.api.harness import ApiProcess, create_key
from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    fetch_rows,
    running,
    seed_fleet,
    seed_message,
    stored_points,
    wait_until,
)

# What the committer counts, under the same names in a worker's /metrics and the API's.
COMMIT_COUNTERS = (
    "telemetry_points_total",
    "bridge_points_duplicate_total",
    'bridge_points_rejected_total{reason="db_rejected"}',
    "bridge_batches_total",
    "bridge_batch_points_sum",
    "bridge_batch_points_count",
    "bridge_db_commit_seconds_count",
)


def forbid_666(db_url: str) -> None:
    async def alter() -> None:
        conn = await asyncpg.connect(db_url)
        try:  # stands for any rule the database enforces and the codecs do not know
            await conn.execute("ALTER TABLE telemetry ADD CONSTRAINT no_666 CHECK (value <> 666)")
        finally:
            await conn.close()

    asyncio.run(alter())


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_a_poison_row_is_dead_lettered_alone(scenario: Scenario, publisher: Publisher) -> None:
    forbid_666(scenario.db_url)
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


def test_a_poison_row_comes_out_the_same_by_mqtt_and_by_http(
    scenario: Scenario, publisher: Publisher
) -> None:
    """The MQTT pipeline and HTTP ingest commit through one committer: a
    reading with a poison point gives the same dead-letter record and the
    same counters by either route, and its good point is stored."""
    forbid_666(scenario.db_url)
    device = f"{scenario.tag}-dev"
    t = time.time_ns() // 1000 - 60_000_000
    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        api = ApiProcess(bridge.config, scenario.tmp).start()
        try:
            publisher.publish(
                scenario.topic("site0", device),
                seed_message(device, t, {"via_mqtt": 1.0, "evil": 666.0}),
            )
            publisher.wait_acked()
            wait_until(
                lambda: (
                    bridge.metrics()["bridge_inflight_messages"] == 0
                    and bridge.metrics()["telemetry_points_total"] == 1
                ),
                30,
                "the MQTT reading committed and acked",
            )
            key = create_key(bridge.config, "write")
            body = seed_message(device, t, {"via_http": 1.0, "evil": 666.0})
            reply = api.request("POST", "/api/v1/telemetry", key, body)
            assert reply.status == 202, reply.body
            answer = reply.json()
            assert answer["accepted"] == 1
            assert answer["durable"] == "committed"
            [letter] = answer["dead_lettered"]
            assert letter["point"] == f"{device}/evil"
            assert letter["reason"] == "db_rejected"
            assert "no_666" in letter["detail"]
            by_mqtt = bridge.metrics()
            by_http = parse_metrics(api.request("GET", "/metrics").body.decode())
        finally:
            api.kill()
        assert bridge.stop() == 0
    for name in COMMIT_COUNTERS:
        assert by_mqtt[name] == by_http[name], name
    assert by_http['bridge_points_rejected_total{reason="db_rejected"}'] == 1
    assert by_http["telemetry_points_total"] == 1
    assert sorted(stored_points(scenario.db_url)) == [
        (device, "via_http", t),
        (device, "via_mqtt", t),
    ]
    rows = fetch_rows(
        scenario.db_url,
        "SELECT received_at, topic, reason, detail, payload, payload_size "
        "FROM rejected_messages ORDER BY id",
    )
    assert len(rows) == 2
    mqtt_row, http_row = (dict(r) for r in rows)
    assert mqtt_row == http_row
    assert mqtt_row["topic"] == f"{device}/evil"
    assert mqtt_row["reason"] == "db_rejected"
    assert mqtt_row["detail"] == letter["detail"]
    assert "no_666" in mqtt_row["detail"]
    assert "SQLSTATE 23514" in mqtt_row["detail"]
    assert mqtt_row["payload"] == b""
    assert mqtt_row["payload_size"] == 0


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
