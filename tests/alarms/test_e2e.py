"""End to end on real services: 2 bridge workers feeding one evaluator; one
alarm per series, none missed; kill -9 of the evaluator during an active
alarm; no data on the real clock; every transition on MQTT alerts/…"""

from __future__ import annotations

import time

from tests.alarms.harness import (
    AlertListener,
    EvaluatorProcess,
    alarm_settings,
    alarms,
    evaluator_port,
    seed_rules,
)
from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    count_rows,
    running,
    seed_message,
    wait_until,
)

HOT = """
[[rule]]
name = "hot"
kind = "threshold"
severity = "critical"
select = { metric = "temperature" }
direction = "above"
threshold = 100.0
clear_threshold = 90.0
count = 3
"""


def test_two_workers_one_alarm_per_series_and_kill_9_of_the_evaluator(
    scenario: Scenario, publisher: Publisher, stack: Stack
) -> None:
    scenario.extra = alarm_settings(scenario, evaluator_port())
    bridge = BridgeProcess(scenario, workers=2)
    seed_rules(bridge.config, HOT, scenario.tmp)
    listener = AlertListener(stack, f"{scenario.tag}/alerts/#")
    evaluator = EvaluatorProcess(bridge.config, scenario.tmp).start()
    start = time.time_ns() // 1000 - 600_000_000
    devices = [f"{scenario.tag}-d{i:02d}" for i in range(20)]
    hot = devices[::2]
    messages = []
    for r in range(30):  # reading r at start + r s; the hot devices at 120 for r in 10..14
        for device in devices:
            value = 120.0 if device in hot and 10 <= r < 15 else 70.0
            topic = scenario.topic("site-1", device)
            messages.append(
                (topic, seed_message(device, start + r * 1_000_000, {"temperature": value}))
            )
    try:
        with running(bridge):
            bridge.wait_ready()
            publisher.publish_all(messages)
            publisher.wait_acked()
            wait_until(lambda: count_rows(scenario.db_url) >= len(messages), 60, "every point")
            shares = [bridge.metrics(w)["telemetry_points_total"] for w in (0, 1)]
            assert all(s > 0 for s in shares), f"one worker took nothing: {shares}"

            def settled() -> bool:
                rows = alarms(scenario.db_url)
                return len(rows) >= len(hot) and all(r["status"] == "resolved" for r in rows)

            wait_until(settled, 60, "an alarm raised and cleared per hot device")
            rows = alarms(scenario.db_url)
            assert sorted(r["device_id"] for r in rows) == sorted(hot)  # one each, none missed
            for r in rows:
                assert r["severity"] == "critical"
                assert r["resolved_by"] == "auto"
                assert r["peak_value"] == 120.0
                assert r["created_at"].timestamp() == (start + 12_000_000) / 1e6  # 3rd hot reading
                assert r["resolved_at"].timestamp() == (start + 15_000_000) / 1e6
            wait_until(lambda: len(listener.messages) >= 2 * len(hot), 30, "MQTT transitions")
            for device in hot:
                assert {t for t, _ in listener.transitions(device)} == {"raised", "cleared"}
            assert all(
                topic.startswith(f"{scenario.tag}/alerts/site-1/") for topic, _ in listener.messages
            )

            # kill -9 of the evaluator while an alarm is active
            victim = devices[1]
            t0 = time.time_ns() // 1000 - 60_000_000

            def send(first: int, values: list[float]) -> None:
                topic = scenario.topic("site-1", victim)
                publisher.publish_all(
                    [
                        (
                            topic,
                            seed_message(victim, t0 + (first + i) * 1_000_000, {"temperature": v}),
                        )
                        for i, v in enumerate(values)
                    ]
                )
                publisher.wait_acked()

            def open_alarms() -> list[dict[str, object]]:
                return [r for r in alarms(scenario.db_url) if r["device_id"] == victim]

            send(0, [120.0] * 4)
            wait_until(lambda: [r["status"] for r in open_alarms()] == ["active"], 30, "active")
            evaluator.kill9()
            before = count_rows(scenario.db_url)
            send(4, [130.0, 125.0])
            wait_until(lambda: count_rows(scenario.db_url) >= before + 2, 30, "points while down")
            evaluator = EvaluatorProcess(bridge.config, scenario.tmp).start()
            send(6, [95.0, 80.0])  # 95: not yet (hysteresis), 80: clears
            wait_until(lambda: [r["status"] for r in open_alarms()] == ["resolved"], 60, "clear")
            (row,) = open_alarms()
            assert row["peak_value"] == 130.0
            assert row["resolved_at"].timestamp() == (t0 + 7_000_000) / 1e6
            wait_until(lambda: len(listener.transitions(victim)) >= 2, 30, "victim's transitions")
            assert sorted(set(listener.transitions(victim))) == [
                ("cleared", row["id"]),
                ("raised", row["id"]),
            ]
            assert len(alarms(scenario.db_url)) == len(hot) + 1
            assert bridge.stop() == 0
    finally:
        listener.close()
        evaluator.stop()
    assert "Traceback" not in evaluator.log()


def test_no_data_on_the_real_clock(scenario: Scenario, publisher: Publisher, stack: Stack) -> None:
    scenario.extra = alarm_settings(scenario, evaluator_port())
    bridge = BridgeProcess(scenario, workers=1)
    device = f"{scenario.tag}-quiet"
    seed_rules(
        bridge.config,
        f'[[rule]]\nname = "silent"\nkind = "no_data"\nseverity = "major"\n'
        f'select = {{ device = "{device}" }}\nfor_s = 3\n',
        scenario.tmp,
    )
    evaluator = EvaluatorProcess(bridge.config, scenario.tmp).start()
    topic = scenario.topic("site-2", device)

    def reading() -> None:
        publisher.publish(topic, seed_message(device, time.time_ns() // 1000, {"pip": 1.0}))
        publisher.wait_acked()

    try:
        with running(bridge):
            bridge.wait_ready()
            reading()
            sent = time.monotonic()
            wait_until(lambda: len(alarms(scenario.db_url)) == 1, 30, "no-data alarm")
            assert time.monotonic() - sent >= 2.5  # not before its 3 s
            (row,) = alarms(scenario.db_url)
            assert row["status"] == "active"
            assert row["metric"] == ""  # device-level: any metric
            reading()
            wait_until(lambda: alarms(scenario.db_url)[0]["status"] == "resolved", 30, "clear")
            assert len(alarms(scenario.db_url)) == 1
    finally:
        evaluator.stop()


def test_a_standby_evaluator_takes_over_after_a_kill_9(
    scenario: Scenario, publisher: Publisher
) -> None:
    """Two evaluators: one evaluates, one waits on the lock; kill -9 the first
    during an active alarm, and the standby clears it (still one alarm)."""
    port = evaluator_port()
    scenario.extra = alarm_settings(scenario, port)
    bridge = BridgeProcess(scenario, workers=2)
    seed_rules(bridge.config, HOT, scenario.tmp)
    first = EvaluatorProcess(bridge.config, scenario.tmp).start()
    second: EvaluatorProcess | None = None
    device = f"{scenario.tag}-s"
    topic = scenario.topic("site-1", device)
    t0 = time.time_ns() // 1000 - 60_000_000

    def send(start: int, values: list[float]) -> None:
        publisher.publish_all(
            [
                (topic, seed_message(device, t0 + (start + i) * 1_000_000, {"temperature": v}))
                for i, v in enumerate(values)
            ]
        )
        publisher.wait_acked()

    try:
        with running(bridge):
            bridge.wait_ready()
            wait_until(lambda: "evaluating 1 rule" in first.log(), 30, "the first evaluating")
            # the standby: its own health port, the same database lock
            second_config = scenario.tmp / "standby.toml"
            second_config.write_text(
                bridge.config.read_text().replace(f"http_port = {port}", f"http_port = {port + 1}")
            )
            second = EvaluatorProcess(second_config, scenario.tmp).start()
            wait_until(lambda: "standing by" in second.log(), 30, "the standby waiting")
            send(0, [120.0] * 3)
            wait_until(
                lambda: [r["status"] for r in alarms(scenario.db_url)] == ["active"], 30, "active"
            )
            first.kill9()
            wait_until(lambda: "evaluating 1 rule" in second.log(), 30, "the standby taking over")
            send(3, [121.0, 80.0])
            wait_until(
                lambda: [r["status"] for r in alarms(scenario.db_url)] == ["resolved"], 30, "clear"
            )
            (row,) = alarms(scenario.db_url)
            assert row["peak_value"] == 121.0
            assert row["resolved_at"].timestamp() == (t0 + 4_000_000) / 1e6
    finally:
        first.stop()
        if second is not None:
            second.stop()
