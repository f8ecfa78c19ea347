"""Influx line protocol through real Mosquitto into the database, with two
workers, one killed mid-stream (its unacked messages are redelivered) and a
batch of messages published twice: every numeric field is in telemetry and
every string field in telemetry_text exactly once, with its value; the site
tag reaches the registry; each bad line is dead-lettered once, its
message's good lines kept."""

from __future__ import annotations

import os
import signal
import time

from tests.integration.harness import (
    Background,
    BridgeProcess,
    Publisher,
    Scenario,
    count_rows,
    fetch_rows,
    running,
    wait_until,
)

ROUTE = """
[[mqtt.routes]]
topic = "influx/{device_id}"
codec = "line_protocol"
options = { device_tag = "host", site_tag = "site", precision = "us" }
"""
MESSAGES = 900
BAD_EVERY = 50


def test_line_protocol_lands_exactly_once_with_two_workers_and_a_crash(
    scenario: Scenario, publisher: Publisher
) -> None:
    scenario.extra = ROUTE
    start = (time.time_ns() // 1000 - 120_000_000) // 1000 * 1000
    numbers: dict[tuple[str, str, int], float] = {}
    texts: dict[tuple[str, str, int], str] = {}
    sites: dict[str, str] = {}
    messages: list[tuple[str, bytes]] = []
    for i in range(MESSAGES):
        t = start + i * 1000
        sensor = f"{scenario.tag}-s{i % 10}"
        sites[sensor] = f"plant{i % 2}"
        lines = [
            f"env,host={sensor},site=plant{i % 2} temp={20 + i / 8},count={i}i,ok={i % 2 == 0} {t}",
            f'status,host={sensor} state="run \\"{i}\\", ok\\\\" {t}',
        ]
        numbers[(sensor, "env.temp", t)] = 20 + i / 8
        numbers[(sensor, "env.count", t)] = float(i)
        numbers[(sensor, "env.ok", t)] = float(i % 2 == 0)
        texts[(sensor, "status.state", t)] = f'run "{i}", ok\\'
        if i % BAD_EVERY == 0:
            lines.insert(1, f"env,host={sensor} temp=NaN {t}")
        messages.append((f"influx/{scenario.tag}-gw{i % 3}", "\n".join(lines).encode()))
    bad = MESSAGES // BAD_EVERY

    def stored() -> tuple[int, int]:
        return count_rows(scenario.db_url), count_rows(
            scenario.db_url, "SELECT count(*) FROM telemetry_text"
        )

    with running(BridgeProcess(scenario, workers=2)) as bridge:
        bridge.wait_ready()
        load = Background(publisher, messages, rate=600)
        wait_until(lambda: stored()[0] > 600, 60, "ingest under way")
        victim = bridge.worker_pid(1)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: bridge.ready(1) and bridge.worker_pid(1) != victim, 30, "worker 1 back")
        load.join()
        publisher.publish_all(messages[:100])  # published again: stored once
        publisher.wait_acked()
        wait_until(lambda: stored() == (len(numbers), len(texts)), 90, "every value")
        wait_until(
            lambda: all(bridge.metrics(w)["bridge_inflight_messages"] == 0 for w in (0, 1)),
            20,
            "all acked",
        )
        # The republished messages reached the database and were refused as
        # duplicates, counted (worker 1's count restarted with it, after the kill).
        duplicates = [bridge.metrics(w) for w in (0, 1)]
        assert sum(m["bridge_text_values_duplicate_total"] for m in duplicates) >= 100
        assert sum(m["bridge_points_duplicate_total"] for m in duplicates) >= 300
        assert bridge.stop() == 0

    rows = fetch_rows(
        scenario.db_url,
        "SELECT device_id, metric, (extract(epoch FROM time) * 1e6)::bigint AS t, value "
        "FROM telemetry",
    )
    assert {(r["device_id"], r["metric"], r["t"]): r["value"] for r in rows} == numbers
    rows = fetch_rows(
        scenario.db_url,
        "SELECT device_id, metric, (extract(epoch FROM time) * 1e6)::bigint AS t, text "
        "FROM telemetry_text",
    )
    assert {(r["device_id"], r["metric"], r["t"]): r["text"] for r in rows} == texts
    letters = fetch_rows(scenario.db_url, "SELECT reason, detail FROM rejected_messages")
    assert len(letters) == bad, [r["detail"] for r in letters][:5]
    assert {r["reason"] for r in letters} == {"non_finite_value"}
    assert all("line 2: env.temp" in r["detail"] for r in letters)
    registry = fetch_rows(scenario.db_url, "SELECT device_id, site_id FROM devices")
    assert {r["device_id"]: r["site_id"] for r in registry} == sites
