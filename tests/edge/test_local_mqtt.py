"""Sensors publishing to the gateway's own broker: the agent takes each
message with the bridge's topic templates and codecs, spools it before it
acks it, and forwards it; the database holds every reading once, with the
device's own timestamps. Bad input is counted, never forwarded."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Stack
from tests.edge.harness import Agent, uplink_toml
from tests.integration.harness import (
    BridgeProcess,
    Key,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    seed_message,
    wait_until,
)


def test_readings_from_local_sensors_arrive_once_with_their_own_timestamps(
    stack: Stack, plain_db: str, tmp_path: Path, publisher: Publisher
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    local = f"{scenario.tag}-gw"  # the gateway's topics (here on the same broker)
    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + f'\n[local_mqtt]\nenabled = true\nport = {stack.mqtt_port}\nclient_id = "l{scenario.tag}"\n'
        f'[[local_mqtt.routes]]\ntopic = "{local}/{{device_id}}"\ncodec = "seed_json"\n'
        f'[[local_mqtt.routes]]\ntopic = "{local}/{{device_id}}/{{metric}}"\ncodec = "raw_value"\n',
    )
    start_us = time.time_ns() // 1000 - 600_000_000
    expected: set[Key] = set()
    messages = []
    for i in range(300):
        device = f"esp32-{i % 3}"
        t = start_us + i * 1000 + 7  # the device's own, microsecond precision
        messages.append((f"{local}/{device}", seed_message(device, t, {"humidity": 40.0 + i})))
        expected.add((device, "humidity", t))
    messages.append((f"{local}/esp32-0", b"{not json"))
    messages.append((f"{local}/esp32-0/level", b"high"))
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("run")
            publisher.publish_all(messages)
            publisher.wait_acked(60)
            wait_until(lambda: count_rows(plain_db) >= len(expected), 60, "every reading")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            metrics = agent.metrics()
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
    assert_exactly_once(plain_db, expected)
    assert metrics['edge_local_rejected_total{reason="malformed_json"}'] == 1
    assert metrics['edge_local_rejected_total{reason="bad_value"}'] == 1
    assert metrics['edge_readings_collected_total{source="local_mqtt"}'] == len(expected)
