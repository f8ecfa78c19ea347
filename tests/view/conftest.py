"""A running deployment with data flowing, for the tests that watch it: a real
`bridge run`, an edge agent simulating a small fleet through the test broker
into it, and `bridge api` reading the same database. One per package: the
Prometheus and browser tests look at the same stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.harness import ApiProcess, create_key
from tests.conftest import Stack, _clone
from tests.edge.harness import Agent, uplink_toml
from tests.integration.harness import BridgeProcess, Scenario, count_rows, wait_until

DEVICES = 4
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
    bridge = BridgeProcess(scenario)
    agent = Agent(
        tmp,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + f'\n[agent]\nsite_id = "site-1"\n\n[simulator]\ndevices = {DEVICES}\n'
        f'rate = {RATE}\nseed = 7\ndevice_prefix = "pump"\n',
    )
    api = ApiProcess(bridge.config, tmp)
    try:
        bridge.start().wait_ready()
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
        agent.kill()
        bridge.kill()
        clone.close()  # drops the database
