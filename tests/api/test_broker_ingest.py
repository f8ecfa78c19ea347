"""HTTP ingest through the broker (api.ingest_via = broker): a real `bridge api`
publishing to the test stack's Mosquitto, a real `bridge run` storing what it
publishes, and every point counted in PostgreSQL. Whatever the broker does not
accept (nobody subscribed, broker unreachable) the API commits itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.api.harness import ApiProcess, Reply, create_key
from tests.conftest import Stack, _clone
from tests.integration.harness import (
    BridgeProcess,
    Key,
    Scenario,
    assert_exactly_once,
    count_rows,
    fetch_rows,
    free_port_block,
    stack_service,
    stored_points,
    wait_until,
)

S = 1_000_000


@dataclass
class Setup:
    scenario: Scenario
    bridge: BridgeProcess
    api: ApiProcess
    key: str
    tmp: Path

    def post(self, path: str, doc: object, api: ApiProcess | None = None) -> Reply:
        return (api or self.api).request("POST", path, self.key, orjson.dumps(doc))

    def api_with(self, env: dict[str, str]) -> ApiProcess:
        return ApiProcess(self.bridge.config, self.tmp, env).start()

    def rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return fetch_rows(self.scenario.db_url, sql, *args)


@pytest.fixture(scope="module")
def setup(
    stack: Stack, templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("broker-ingest")
    clone = _clone(stack, templates["plain"])
    db_url = next(clone)
    scenario = Scenario(
        stack,
        db_url,
        tmp,
        routes=[("{site_id}/{device_id}", "seed_json"), ("{device_id}", "seed_json")],
        extra=f"""
[api]
ingest_via = "broker"
broker_timeout_s = 2

[api.broker]
host = "127.0.0.1"
port = {stack.mqtt_port}
""",
    )
    bridge = BridgeProcess(scenario).start().wait_ready()
    api = ApiProcess(bridge.config, tmp)
    try:
        api.start()
        wait_until(lambda: _broker_check(api) == "ok", 20, "the API connected to the broker")
        yield Setup(scenario, bridge, api, create_key(bridge.config, "write"), tmp)
    finally:
        api.kill()
        bridge.kill()
        clone.close()


def _broker_check(api: ApiProcess) -> str:
    doc = api.request("GET", "/readyz").json()
    return str(doc.get("checks", {}).get("broker"))


def _metrics(api: ApiProcess) -> dict[str, float]:
    text = api.request("GET", "/metrics").body.decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("api_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _reading(device: str, t: int, n: int, site: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"device_id": device, "timestamp": t, "data": _data(n)}
    if site is not None:
        doc["site_id"] = site
    return doc


def _data(n: int) -> dict[str, float]:
    return {"flow_rate": 1000.5 + n, "pip": 2500.25 - n, "running": float(n % 2)}


def _keys(doc: dict[str, object]) -> set[Key]:
    t = doc["timestamp"]
    assert isinstance(t, int)
    return {(str(doc["device_id"]), m, t) for m in _data(0)}


def test_readings_published_through_the_broker_arrive_exactly_once(setup: Setup) -> None:
    tag = setup.scenario.tag
    base = time.time_ns() // 1000 - 120 * S
    expected: set[Key] = set()
    # Single readings, half with a site (topic <tag>/<site>/<device>), half
    # without (topic <tag>/<device>), and batches spanning several devices.
    for n in range(60):
        d = n % 3
        doc = _reading(f"{tag}-d{d}", base + n * 1000, n, f"s{d}" if n % 2 else None)
        reply = setup.post("/api/v1/telemetry", doc)
        assert reply.status == 202, reply.body
        assert reply.json() == {"accepted": 3, "durable": "broker"}
        expected |= _keys(doc)
    for b in range(10):
        readings = [
            _reading(f"{tag}-d{d}", base + 100_000 + b * 1000 + r, b + r, f"s{d}" if d else None)
            for d in range(3)
            for r in range(2)
        ]
        reply = setup.post("/api/v1/telemetry/batch", {"readings": readings})
        assert reply.status == 202, reply.body
        assert reply.json() == {"accepted": 18, "durable": "broker"}
        for doc in readings:
            expected |= _keys(doc)
    assert len(expected) == 60 * 3 + 10 * 18
    # The answer came on the broker's PUBACK; the bridge stores them shortly after.
    db = setup.scenario.db_url
    wait_until(lambda: count_rows(db) >= len(expected), 60, f"{len(expected)} rows")
    assert_exactly_once(db, expected)
    metrics = _metrics(setup.api)
    assert metrics["api_points_published_total"] == len(expected)
    assert metrics["api_points_submitted_total"] == len(expected)
    assert not [m for m in metrics if m.startswith("api_broker_fallbacks_total{")]
    # A reading without a site (d0's last ones) keeps the site its device has.
    rows = setup.rows("SELECT device_id, site_id FROM devices WHERE device_id LIKE $1", f"{tag}-%")
    assert {r["device_id"]: r["site_id"] for r in rows} == {
        f"{tag}-d0": "s0",
        f"{tag}-d1": "s1",
        f"{tag}-d2": "s2",
    }


def _post_one(setup: Setup, api: ApiProcess, device: str) -> tuple[Reply, set[Key]]:
    t = time.time_ns() // 1000 - 10 * S
    doc = _reading(device, t, 7)
    reply = setup.post("/api/v1/telemetry", doc, api)
    return reply, _keys(doc)


def test_nobody_subscribed_means_the_api_commits_itself(setup: Setup) -> None:
    # Routes nobody subscribes to: Mosquitto answers 0x10 and drops the message.
    nowhere = f'[{{"topic": "nobody-{setup.scenario.tag}/{{device_id}}", "codec": "seed_json"}}]'
    api = setup.api_with({"BRIDGE_MQTT__ROUTES": nowhere})
    try:
        wait_until(lambda: _broker_check(api) == "ok", 20, "the API connected to the broker")
        device = f"{setup.scenario.tag}-unheard"
        reply, keys = _post_one(setup, api, device)
        assert reply.status == 202, reply.body
        assert reply.json() == {"accepted": 3, "durable": "committed"}
        # Committed before the answer: no waiting.
        rows = setup.rows("SELECT metric FROM telemetry WHERE device_id = $1", device)
        assert len(rows) == len(keys) == 3
        assert _metrics(api)['api_broker_fallbacks_total{reason="no_subscribers"}'] == 3
    finally:
        api.kill()


def test_an_unreachable_broker_means_the_api_commits_itself(setup: Setup) -> None:
    api = setup.api_with({"BRIDGE_API__BROKER__PORT": str(free_port_block(1))})
    try:
        ready = api.request("GET", "/readyz")
        assert ready.status == 200  # the broker is optional: the database route serves
        assert ready.json()["checks"]["broker"].startswith("degraded:")
        device = f"{setup.scenario.tag}-unreachable"
        reply, _ = _post_one(setup, api, device)
        assert reply.status == 202, reply.body
        assert reply.json() == {"accepted": 3, "durable": "committed"}
        assert len(setup.rows("SELECT 1 FROM telemetry WHERE device_id = $1", device)) == 3
        assert _metrics(api)['api_broker_fallbacks_total{reason="not_connected"}'] == 3
        assert "cannot publish HTTP readings to the broker" in api.log()
    finally:
        api.kill()


def test_a_broker_outage_costs_no_reading(setup: Setup) -> None:
    """Submits while the broker is down are committed by the API; once it is
    back, they go through it again; every point is stored exactly once."""
    tag = setup.scenario.tag
    device = f"{tag}-outage"
    expected: set[Key] = set()
    answers: list[str] = []

    def submit(n: int) -> str:
        doc = _reading(device, time.time_ns() // 1000 - 30 * S + n, n)
        reply = setup.post("/api/v1/telemetry", doc)
        assert reply.status == 202, reply.body
        expected.update(_keys(doc))
        answers.append(reply.json()["durable"])
        return str(answers[-1])

    stack_service("down", "mosquitto")
    try:
        wait_until(lambda: _broker_check(setup.api) != "ok", 20, "the API to see the broker gone")
        for n in range(20):
            assert submit(n) == "committed"
    finally:
        stack_service("up", "mosquitto")
    wait_until(lambda: _broker_check(setup.api) == "ok", 30, "the API back on the broker")
    # Until the bridge has subscribed again (a restarted Mosquitto 2.0 forgets
    # shared subscriptions), the broker answers 0x10 and the API commits.
    count = iter(range(20, 100_000))
    wait_until(lambda: submit(next(count)) == "broker", 30, "a submit through the broker")
    for _ in range(20):
        assert submit(next(count)) == "broker"
    db = setup.scenario.db_url
    sql = f"SELECT count(*) FROM telemetry WHERE device_id = '{device}'"
    wait_until(lambda: count_rows(db, sql) >= len(expected), 60, f"{len(expected)} rows")
    stored = [k for k in stored_points(db) if k[0] == device]
    assert len(stored) == len(set(stored)), "a point is stored twice"
    assert set(stored) == expected


def test_a_point_near_the_age_limit_is_committed_by_the_api(setup: Setup) -> None:
    # The bridge checks the age again on receipt, possibly much later (the
    # broker queues while it is down): such a point is never left to it.
    device = f"{setup.scenario.tag}-old"
    t = time.time_ns() // 1000 - (90 * 86_400 - 3600) * S  # limits.max_age_days = 90
    reply = setup.post("/api/v1/telemetry", _reading(device, t, 1))
    assert reply.status == 202, reply.body
    assert reply.json() == {"accepted": 3, "durable": "committed"}
    assert len(setup.rows("SELECT 1 FROM telemetry WHERE device_id = $1", device)) == 3
    assert _metrics(setup.api)['api_broker_fallbacks_total{reason="near_age_limit"}'] == 3
