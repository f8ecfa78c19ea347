"""Hostile input is dead-lettered with reasons; every valid point around it arrives."""

from __future__ import annotations

import time
from collections import Counter

import orjson

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


def hostile_corpus(sc: Scenario) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) for a spread of bad messages."""
    dev = f"{sc.tag}-victim"
    topic = sc.topic("site0", dev)
    now_us = time.time_ns() // 1000
    return [
        (topic, b"{not json", "malformed_json"),
        (topic, b"\xff\xfe\x00garbage", "malformed_json"),
        (topic, b"", "malformed_json"),
        (topic, b'{"data": {"flow_rate": "high"}}', "bad_value"),
        (topic, b'{"data": {"flow_rate": null}}', "bad_value"),
        (topic, b'{"data": {"flow_rate": 1e999}}', "non_finite_value"),
        (topic, b'{"data": {"bad metric!": 1}}', "bad_metric_name"),
        (topic, b'{"data": {"\\u0000": 1}}', "bad_metric_name"),
        (topic, b'{"data": {"m": 1}, "timestamp": "yesterday-ish"}', "bad_timestamp"),
        (topic, seed_message(dev, now_us + 10 * 86_400_000_000, {"m": 1.0}), "time_in_future"),
        (topic, seed_message(dev, now_us - 400 * 86_400_000_000, {"m": 1.0}), "time_too_old"),
        (topic, orjson.dumps({"device_id": "someone-else", "data": {"m": 1}}), "device_mismatch"),
        (topic, b'{"data": "nope"}', "bad_shape"),
        (topic, b"[1, 2, 3]", "bad_shape"),
        (topic, b'{"data": {"m": 1}}' + b" " * 1_048_576, "payload_too_large"),
        (topic, '{"data": {"température": 1, "温度": 2}}'.encode(), "bad_metric_name"),
        (sc.topic("site0", "bad device id with spaces"), b'{"data": {"m": 1}}', "bad_topic"),
        (sc.topic("site0", "x" * 500), b'{"data": {"m": 1}}', "bad_topic"),
    ]


def test_hostile_corpus_is_dead_lettered_and_valid_points_arrive(
    scenario: Scenario, publisher: Publisher
) -> None:
    corpus = hostile_corpus(scenario)
    good, expected = seed_fleet(scenario, devices=10, readings=20)
    # Interleave: a bad message after every few good ones, the corpus twice.
    bad = [(t, p) for t, p, _ in corpus] * 2
    messages: list[tuple[str, bytes]] = []
    for i, msg in enumerate(good):
        messages.append(msg)
        if i % 5 == 0 and bad:
            messages.append(bad.pop())
    messages.extend(bad)
    # A message with valid and invalid points keeps the valid ones.
    mixed_dev = f"{scenario.tag}-mixed"
    t = time.time_ns() // 1000 - 1_000_000
    mixed = orjson.dumps(
        {"timestamp": t / 1e6, "data": {"ok_metric": 1.5, "bad!": 2, "also_ok": True, "nan": "NaN"}}
    )
    messages.append((scenario.topic("site1", mixed_dev), mixed))
    t_us = round(t / 1e6 * 1e6)
    expected |= {(mixed_dev, "ok_metric", t_us), (mixed_dev, "also_ok", t_us)}

    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages)
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "valid points")
        wait_until(lambda: bridge.metrics().get("bridge_inflight_messages", 1) == 0, 20, "acks")
        assert not bridge.exited(), bridge.log()[-2000:]
        assert bridge.ready()
        metrics = bridge.metrics()
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)

    # The corpus went out twice, byte for byte: one dead letter per distinct
    # reject (an identical one within the hour is the same row, as a
    # redelivery is: db/migrations/0005), and the metrics count every one.
    distinct = Counter(r for _, _, r in corpus)
    for reason, count in distinct.items():
        stored = count_rows(
            scenario.db_url,
            f"SELECT count(*) FROM rejected_messages WHERE reason = '{reason}' "
            "AND topic NOT LIKE '%mixed'",
        )
        assert stored == count, f"{stored} dead letters with reason {reason}, not {count}"
        counted = sum(v for k, v in metrics.items() if f'reason="{reason}"' in k and "_total" in k)
        assert counted >= 2 * count, f"reason {reason} not counted in metrics"
    # The mixed message dead-lettered only its bad points.
    assert (
        count_rows(
            scenario.db_url,
            "SELECT count(*) FROM rejected_messages WHERE topic LIKE '%mixed' AND reason = 'bad_metric_name'",
        )
        == 1
    )
    # Dead letters are bounded: the 1 MB payload is cut, its size recorded.
    assert (
        count_rows(
            scenario.db_url,
            "SELECT max(octet_length(payload)) FROM rejected_messages WHERE reason = 'payload_too_large'",
        )
        <= 8192
    )
    assert (
        count_rows(
            scenario.db_url,
            "SELECT min(payload_size) FROM rejected_messages WHERE reason = 'payload_too_large'",
        )
        > 1_000_000
    )
