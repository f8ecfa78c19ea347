"""Devices as they publish out of the box, through real Mosquitto into the
database: a Tasmota plug on tele/<device>/SENSOR and tele/<device>/STATE, and a
Zigbee2MQTT sensor on zigbee2mqtt/<device>, each read by a one-line preset
route on its native topic. Every point arrives exactly once, with its value;
a bad reading costs only itself and is dead-lettered with its reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from tests.integration.harness import (
    BridgeProcess,
    Key,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    fetch_rows,
    running,
    wait_until,
)

ROUTES = """
[[mqtt.routes]]
topic = "tele/{device_id}/SENSOR"
codec = "mapping"
options = { preset = "tasmota" }

[[mqtt.routes]]
topic = "tele/{device_id}/STATE"
codec = "mapping"
options = { preset = "tasmota" }

[[mqtt.routes]]
topic = "zigbee2mqtt/{device_id}"
codec = "mapping"
options = { preset = "zigbee2mqtt" }
"""


def local_time(time_us: int) -> str:
    """As Tasmota writes "Time": local time without an offset (here UTC)."""
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_tasmota_and_zigbee2mqtt_devices_land_in_the_database(
    scenario: Scenario, publisher: Publisher
) -> None:
    scenario.extra = ROUTES
    plug = f"{scenario.tag}-plug"
    sensor = f"{scenario.tag}-0x00158d0001"
    start = (time.time_ns() // 1_000_000_000 - 120) * 1_000_000  # whole seconds, 2 min ago
    messages: list[tuple[str, bytes]] = []
    expected: dict[Key, float] = {}
    for i in range(20):
        t = start + i * 1_000_000
        energy = {"TotalStartTime": "2018-11-14T18:39:40", "Total": 6.25 + i, "Power": 100 + i}
        sensor_doc = {"Time": local_time(t), "ENERGY": energy, "TempUnit": "C"}
        messages.append((f"tele/{plug}/SENSOR", orjson.dumps(sensor_doc)))
        expected[(plug, "ENERGY.Total", t)] = 6.25 + i
        expected[(plug, "ENERGY.Power", t)] = 100.0 + i
        state = {"Time": local_time(t), "UptimeSec": 13 + i, "POWER": "ON" if i % 2 else "OFF"}
        messages.append((f"tele/{plug}/STATE", orjson.dumps(state)))
        expected[(plug, "UptimeSec", t)] = 13.0 + i
        expected[(plug, "POWER", t)] = float(i % 2)
        z2m = {"temperature": 20 + i / 4, "humidity": 40 + i, "linkquality": 120}
        z2m["last_seen"] = t // 1000  # epoch ms, as advanced.last_seen: epoch writes it
        messages.append((f"zigbee2mqtt/{sensor}", orjson.dumps(z2m)))
        expected[(sensor, "temperature", t)] = 20 + i / 4
        expected[(sensor, "humidity", t)] = 40.0 + i
        expected[(sensor, "linkquality", t)] = 120.0
    # One reading beyond a double: it alone is dead-lettered, its neighbour kept.
    t = start + 30 * 1_000_000
    messages.append(
        (f"tele/{plug}/SENSOR", b'{"Time":"%s","ENERGY":{"Total":1e999,"Power":7}}' % (
            local_time(t).encode()))
    )  # fmt: skip
    expected[(plug, "ENERGY.Power", t)] = 7.0

    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages)
        publisher.wait_acked()
        wait_until(
            lambda: count_rows(scenario.db_url) >= len(expected), 60, f"{len(expected)} points"
        )
        wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 20, "all acked")
        assert bridge.metrics()['bridge_points_rejected_total{reason="non_finite_value"}'] == 1
        assert bridge.stop() == 0

    assert_exactly_once(scenario.db_url, set(expected))
    rows = fetch_rows(
        scenario.db_url,
        "SELECT device_id, metric, (extract(epoch FROM time) * 1e6)::bigint AS t, value "
        "FROM telemetry",
    )
    assert {(r["device_id"], r["metric"], r["t"]): r["value"] for r in rows} == expected
    letters = fetch_rows(scenario.db_url, "SELECT topic, reason, detail FROM rejected_messages")
    assert [(r["topic"], r["reason"]) for r in letters] == [
        (f"tele/{plug}/SENSOR", "non_finite_value")
    ]
    assert "ENERGY.Total" in letters[0]["detail"]
    devices = fetch_rows(scenario.db_url, "SELECT device_id FROM devices ORDER BY device_id")
    assert [r["device_id"] for r in devices] == sorted([plug, sensor])
