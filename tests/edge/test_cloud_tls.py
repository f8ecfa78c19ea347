"""Against the production cloud broker (mosquitto/cloud.conf): the agent logs
in over TLS as its site's gateway account, which the ACL lets publish
telemetry/site-1/+ only, and everything arrives once through the real bridge.
A wrong password is refused, said in the log and in /healthz, and costs
nothing: the readings wait in the spool."""

from __future__ import annotations

from pathlib import Path

from tests.broker.brokers import Cloud
from tests.broker.ingest import BrokerScenario
from tests.conftest import Stack
from tests.edge.harness import Agent, keys, uplink_toml
from tests.edge.test_spool import past_fleet
from tests.integration.harness import (
    BridgeProcess,
    assert_exactly_once,
    count_rows,
    running,
    wait_until,
)


def test_the_agent_publishes_over_tls_as_its_gateway(
    stack: Stack, plain_db: str, tmp_path: Path, cloud: Cloud
) -> None:
    password = cloud.provision("gw-site-1", site="site-1")
    cloud.reload()
    scenario = BrokerScenario(
        stack, plain_db, tmp_path, mqtt_port=cloud.local_port, password=cloud.passwords["bridge"]
    )
    simulator, generated = past_fleet(devices=5, rate=2, seconds=10)
    tls = f'\n[uplink.tls]\nca_file = "{cloud.ca}"\n'
    login = {"host": "localhost", "username": "gw-site-1"}  # the certificate's name
    wrong = Agent(
        tmp_path,
        uplink_toml(cloud.port, "telemetry/{site_id}/{device_id}", password="nope", **login)
        + tls
        + simulator,
        name="wrong",
    )
    agent = Agent(
        tmp_path,
        uplink_toml(cloud.port, "telemetry/{site_id}/{device_id}", password=password, **login)
        + tls
        + simulator,
    )
    try:
        wrong.start("simulate")
        wait_until(lambda: "refused the connection" in wrong.log(), 30, "the refusal logged")
        health = wrong.status()
        assert health["uplink"]["connected"] is False
        assert health["uplink"]["error"] == "refused the connection: Not authorized"
        assert health["spool"]["readings"] == len(generated)
        assert wrong.stop() == 0

        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("simulate")
            wait_until(lambda: count_rows(plain_db) >= len(generated), 60, "every reading")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        wrong.kill()
        agent.kill()
    assert_exactly_once(plain_db, keys(generated))
    assert "refused the connection: Not authorized" in wrong.log()
