"""`bridge run --worker I`: one worker per pod (deploy/k8s/bridge.yaml).

The pod's ordinal is the worker id: it connects as <mqtt.client_id>-I, keeps
that session, and serves health and metrics on http.port itself (a probe
needs one port for every pod), not on http.port + I.
"""

from __future__ import annotations

import orjson

from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    seed_fleet,
    wait_until,
)


def test_worker_flag_gives_the_pod_its_identity(scenario: Scenario, publisher: Publisher) -> None:
    bridge = BridgeProcess(scenario)
    with running(bridge, "run", "--worker", "2") as b:
        b.wait_ready()
        status, body = b.get("/healthz")
        assert status == 200
        health = orjson.loads(body)
        assert (health["worker"], health["client_id"]) == (2, f"{scenario.client_id}-2")
        messages, expected = seed_fleet(scenario, devices=5, readings=20)
        publisher.publish_all(messages)
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "all points stored")
        assert b.stop() == 0
    assert_exactly_once(scenario.db_url, expected)


def test_worker_flag_refuses_workers(scenario: Scenario) -> None:
    bridge = BridgeProcess(scenario)
    with running(bridge, "run", "--worker", "1", "--workers", "2") as b:
        assert b.wait_exit(30) == 1
    assert "--worker takes a worker index" in b.log()
