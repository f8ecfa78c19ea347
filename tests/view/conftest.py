"""A running deployment with data flowing, for the tests that watch it: a real
`bridge run`, an edge agent simulating a small fleet through the test broker
into it (pump-0003 overheating, an injected fault), the alarm evaluator with
one rule, and `bridge api` reading the same database. One per package: the
Prometheus and browser tests look at the same stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.alarms.harness import EvaluatorProcess, alarm_settings, evaluator_port, seed_rules
from tests.api.harness import ApiProcess, create_key
from tests.conftest import Stack, _clone
from tests.edge.harness import Agent, uplink_toml
from tests.integration.harness import BridgeProcess, Scenario, count_rows, wait_until

DEVICES = 4
OVERHEAT_RULE = """
[[rule]]
name = "view-overheat"
kind = "threshold"
severity = "major"
select = { metric = "temperature" }
direction = "above"
threshold = 100.0
count = 2
"""
RATE = 2.0  # readings per device per second, 3 metrics each


@dataclass
class Flowing:
    scenario: Scenario
    bridge: BridgeProcess
    agent: Agent
    api: ApiProcess
    read_key: str
    devices: list[str]


@pytest.fixture(scope="package")
def flowing(
    stack: Stack, templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flowing]:
    tmp = tmp_path_factory.mktemp("flowing")
    clone = _clone(stack, templates["plain"])
    db_url = next(clone)
    scenario = Scenario(stack, db_url, tmp)
    scenario.extra = alarm_settings(scenario, evaluator_port())
    bridge = BridgeProcess(scenario)
    seed_rules(bridge.config, OVERHEAT_RULE, tmp)
    agent = Agent(
        tmp,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + f'\n[agent]\nsite_id = "site-1"\n\n[simulator]\ndevices = {DEVICES}\n'
        f'rate = {RATE}\nseed = 7\ndevice_prefix = "pump"\n'
        # pump-0003 overheats 10 s after its first reading, for good
        f'[[simulator.faults]]\ndevice = 3\nsignal = "temperature"\nstart_s = 10.0\n'
        f"end_s = 86400.0\nvalue = 120.0\n",
    )
    api = ApiProcess(bridge.config, tmp)
    evaluator = EvaluatorProcess(bridge.config, tmp)
    try:
        bridge.start().wait_ready()
        evaluator.start()
        agent.start("simulate")
        wait_until(lambda: count_rows(db_url) > 0, 30, "the first simulated readings stored")
        api.start()
        yield Flowing(
            scenario,
            bridge,
            agent,
            api,
            create_key(bridge.config, "read"),
            [f"pump-{d:04d}" for d in range(DEVICES)],
        )
    finally:
        api.kill()
        evaluator.stop()
        agent.kill()
        bridge.kill()
        clone.close()  # drops the database
