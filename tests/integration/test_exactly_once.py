"""Every supported payload shape arrives exactly once; duplicates are stored once."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    seed_fleet,
    seed_message,
    stored_points,
    wait_until,
)


def test_every_shape_exactly_once_in_each_mode(
    stack: Stack, any_db: str, tmp_path: Path, publisher: Publisher
) -> None:
    sc = Scenario(stack, any_db, tmp_path)
    sc.routes = [
        ("seed/{site_id}/{device_id}", "seed_json"),
        ("flat/{device_id}", "flat_json"),
        ("raw/{device_id}/{metric}", "raw_value"),
    ]
    now_us = time.time_ns() // 1000 - 60_000_000
    expected: set[tuple[str, str, int]] = set()
    messages: list[tuple[str, bytes]] = []
    dev = f"{sc.tag}-a"
    # seed JSON, one reading and a list of readings
    messages.append(
        (sc.topic("seed", "s1", dev), seed_message(dev, now_us, {"flow_rate": 1.5, "pip": 2.0}))
    )
    expected |= {(dev, "flow_rate", now_us), (dev, "pip", now_us)}
    # epoch milliseconds, 100 readings in one message
    readings = [
        {"timestamp": now_us // 1000 + i, "data": {"temperature": 70.2 + i}} for i in range(1, 101)
    ]
    messages.append((sc.topic("seed", "s1", dev), orjson.dumps(readings)))
    expected |= {(dev, "temperature", (now_us // 1000 + i) * 1000) for i in range(1, 101)}
    # flat JSON: one point, a list, and a {"points": [...]} batch
    fdev = f"{sc.tag}-b"
    messages.append(
        (sc.topic("flat", fdev), orjson.dumps({"metric": "m1", "value": 1, "ts": now_us}))
    )
    messages.append(
        (
            sc.topic("flat", fdev),
            orjson.dumps(
                [
                    {"metric": "m2", "value": True, "ts": now_us},
                    {"metric": "m3", "value": -4.25, "ts": now_us},
                ]
            ),
        )
    )
    messages.append(
        (
            sc.topic("flat", fdev),
            orjson.dumps(
                {"points": [{"metric": "m4", "value": i, "ts": now_us + i} for i in range(50)]}
            ),
        )
    )
    expected |= {(fdev, m, now_us) for m in ("m1", "m2", "m3")}
    expected |= {(fdev, "m4", now_us + i) for i in range(50)}
    # a bare number with the metric in the topic (receive time)
    rdev = f"{sc.tag}-c"
    messages.append((sc.topic("raw", rdev, "humidity"), b" 41.5 "))

    # Published twice: duplicates must be stored once.
    with running(BridgeProcess(sc)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages + messages)
        publisher.wait_acked()
        total = len(expected) + 1  # + the raw value, whose time is the receive time
        wait_until(lambda: count_rows(any_db) >= total, 30, f"{total} rows")
        wait_until(
            lambda: bridge.metrics().get("bridge_inflight_messages", 1) == 0, 10, "all acked"
        )
        raw = count_rows(
            any_db,
            f"SELECT count(*) FROM telemetry WHERE device_id = '{rdev}' AND value = 41.5",
        )
        # Published twice, stamped with two receive times: two readings, or one if
        # both arrived in the same microsecond.
        assert raw in (1, 2)
        rows = [r for r in stored_points(any_db) if r[0] != rdev]
        assert len(rows) == len(set(rows))
        assert set(rows) == expected
        m = bridge.metrics()
        assert m["bridge_points_duplicate_total"] >= len(expected)
        assert bridge.stop() == 0


def test_fleet_of_single_readings_exactly_once(scenario: Scenario, publisher: Publisher) -> None:
    messages, expected = seed_fleet(scenario, devices=50, readings=40)
    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages)
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "all points")
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)
    # The registry knows every device, with its site from the topic.
    assert (
        count_rows(scenario.db_url, "SELECT count(*) FROM devices WHERE site_id LIKE 'site%'") == 50
    )


def test_the_bridge_keeps_plain_rollups_fresh(scenario: Scenario, publisher: Publisher) -> None:
    messages, expected = seed_fleet(scenario, devices=5, readings=20)
    with running(BridgeProcess(scenario, maintain_interval_s=0.5)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages)
        publisher.wait_acked()
        # Worker 0's periodic maintenance refreshes telemetry_1m from the new rows.
        wait_until(
            lambda: (
                count_rows(scenario.db_url, "SELECT coalesce(sum(count), 0) FROM telemetry_1m")
                == len(expected)
            ),
            30,
            "rollups to cover every point",
        )
        assert bridge.stop() == 0
