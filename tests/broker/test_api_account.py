"""The read API's broker account (api.ingest_via = broker) on a broker rendered
from mosquitto/cloud.conf and cloud.acl: it may publish telemetry for any
device, through the real bridge into the database; an API logged in with an
account the ACL does not let publish gets refused and commits the readings
itself, so none is lost."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from tests.api.harness import ApiProcess, create_key
from tests.broker.brokers import Cloud
from tests.broker.ingest import BrokerScenario
from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Key,
    count_rows,
    running,
    stored_points,
    wait_until,
)

S = 1_000_000


def test_the_api_account_publishes_for_any_device(
    cloud: Cloud, stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    api_pw = cloud.provision("api")
    pump_pw = cloud.provision("pump-a")
    cloud.reload()
    scenario = BrokerScenario(
        stack,
        plain_db,
        tmp_path,
        mqtt_port=cloud.local_port,
        password=cloud.passwords["bridge"],
        routes=[("{site_id}/{device_id}", "seed_json"), ("{device_id}", "seed_json")],
        extra=f"""
[api]
ingest_via = "broker"

[api.broker]
port = {cloud.local_port}
username = "api"
password = "{api_pw}"
""",
    )
    expected: set[Key] = set()

    def submit(api: ApiProcess, key: str, device: str, site: str | None, n: int) -> str:
        t = time.time_ns() // 1000 - 60 * S + n
        doc: dict[str, object] = {"device_id": device, "timestamp": t, "data": {"flow": n}}
        if site:
            doc["site_id"] = site
        reply = api.request("POST", "/api/v1/telemetry", key, orjson.dumps(doc))
        assert reply.status == 202, reply.body
        expected.add((device, "flow", t))
        return str(reply.json()["durable"])

    def broker_ok(api: ApiProcess) -> bool:
        return api.request("GET", "/readyz").json()["checks"].get("broker") == "ok"

    with running(BridgeProcess(scenario)) as bridge:
        bridge.wait_ready()
        key = create_key(bridge.config, "write")
        api = ApiProcess(bridge.config, tmp_path).start()
        try:
            wait_until(lambda: broker_ok(api), 20, "the API logged in to the broker")
            # Any device, with a site (telemetry/<site>/<device>) or without
            # (telemetry/<device>): accepted by the broker, stored by the bridge.
            answers = [
                submit(api, key, f"pump-{n % 4}", "site-1" if n % 2 else None, n) for n in range(8)
            ]
            assert answers == ["broker"] * 8
        finally:
            api.kill()
        # With a device's account, the ACL refuses every other device: the API
        # commits those readings itself.
        as_pump = ApiProcess(
            bridge.config,
            tmp_path,
            {"BRIDGE_API__BROKER__USERNAME": "pump-a", "BRIDGE_API__BROKER__PASSWORD": pump_pw},
        ).start()
        try:
            wait_until(lambda: broker_ok(as_pump), 20, "the API logged in as pump-a")
            assert [submit(as_pump, key, "pump-b", None, 100 + n) for n in range(3)] == [
                "committed"
            ] * 3
            assert "refused a reading" in as_pump.log()
            metrics = as_pump.request("GET", "/metrics").body.decode()
            assert 'api_broker_fallbacks_total{reason="refused"} 3.0' in metrics
        finally:
            as_pump.kill()
        wait_until(lambda: count_rows(plain_db) >= len(expected), 30, "every point")
    stored = stored_points(plain_db)
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
