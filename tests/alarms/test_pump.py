"""A simulated pump (the edge agent's simulator) with an injected fault
raises an alarm and clears it when the fault ends: seen in the database,
through the API and on the MQTT alerts topic. Real agent, broker, bridge,
evaluator and API."""

from __future__ import annotations

import time

from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from tests.alarms.harness import (
    AlertListener,
    EvaluatorProcess,
    alarm_settings,
    alarms,
    evaluator_port,
    seed_rules,
)
from tests.api.harness import ApiProcess, create_key
from tests.conftest import Stack
from tests.edge.harness import Agent, uplink_toml
from tests.integration.harness import BridgeProcess, Scenario, running, wait_until

RATE = 2.0
FAULT = (6.0, 14.0)  # seconds after the first reading: temperature reads 120
RULES = """
[[rule]]
name = "pump-overheat"
kind = "threshold"
severity = "critical"
select = { metric = "temperature" }
direction = "above"
threshold = 100.0
clear_threshold = 85.0
for_s = 2.0
"""


def test_a_pump_fault_raises_and_clears_an_alarm(stack: Stack, scenario: Scenario) -> None:
    scenario.extra = alarm_settings(scenario, evaluator_port())
    bridge = BridgeProcess(scenario, workers=2)
    seed_rules(bridge.config, RULES, scenario.tmp)
    start = time.time() + 1
    sim = (
        f"\n[simulator]\ndevices = 3\nrate = {RATE}\nseed = 3\nstart = {start!r}\n"
        f'device_prefix = "{scenario.tag}"\nduration_s = 22.0\n'
        f'[[simulator.faults]]\ndevice = 1\nsignal = "temperature"\n'
        f"start_s = {FAULT[0]}\nend_s = {FAULT[1]}\nvalue = 120.0\n"
    )
    fleet = Fleet(
        SimulatorSettings(  # type: ignore[call-arg]
            devices=3,
            rate=RATE,
            seed=3,
            start=start,
            device_prefix=scenario.tag,
            duration_s=22.0,
            faults=[
                {
                    "device": 1,
                    "signal": "temperature",
                    "start_s": FAULT[0],
                    "end_s": FAULT[1],
                    "value": 120.0,
                }
            ],
        ),
        round(start * 1e6),
    )
    pump = f"{scenario.tag}-0001"
    hot = [
        p.time_us
        for tick in range((fleet.last_tick or 0) + 1)
        for p in fleet.readings(tick)
        if p.device_id == pump and p.metric == "temperature" and p.value > 100
    ]
    assert hot, "the fault produced no reading"
    agent = Agent(
        scenario.tmp,
        uplink_toml(stack.mqtt_port, scenario.topic("site-9", "{device_id}")) + sim,
    )
    listener = AlertListener(stack, f"{scenario.tag}/alerts/#")
    evaluator = EvaluatorProcess(bridge.config, scenario.tmp).start()
    api = ApiProcess(bridge.config, scenario.tmp)
    try:
        with running(bridge):
            bridge.wait_ready()
            api.start()
            key = create_key(bridge.config, "read")
            agent.start("simulate")
            wait_until(lambda: len(alarms(scenario.db_url)) == 1, 60, "the pump's alarm")
            page = api.request("GET", "/api/v1/analytics/anomalies", key).json()
            (item,) = page["items"]
            assert (item["device_id"], item["rule"], item["severity"]) == (
                pump,
                "pump-overheat",
                "critical",
            )
            wait_until(lambda: alarms(scenario.db_url)[0]["status"] == "resolved", 60, "clear")
            (row,) = alarms(scenario.db_url)
            assert row["peak_value"] == 120.0
            # raised at the first hot reading that is 2 s into the fault
            first = min(hot)
            raised = min(t for t in hot if t - first >= 2_000_000)
            assert round(row["created_at"].timestamp() * 1e6) == raised
            assert row["resolved_at"].timestamp() * 1e6 > max(hot)
            item = api.request("GET", "/api/v1/analytics/anomalies?status=resolved", key).json()[
                "items"
            ][0]
            assert item["ended_at"] is not None
            wait_until(lambda: len(listener.transitions(pump)) >= 2, 30, "MQTT transitions")
            assert [t for t, _ in listener.transitions(pump)] == ["raised", "cleared"]
            assert {topic for topic, _ in listener.messages} == {
                f"{scenario.tag}/alerts/site-9/{pump}"
            }
    finally:
        agent.kill()
        api.kill()
        listener.close()
        evaluator.stop()
