"""The alarm routes of a real `bridge api`: rule CRUD with 422 problems that
name each mistake, /analytics/anomalies with filters and cursor paging, and
acknowledging and clearing, each recorded for notification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
import pytest

from bridge.alarms import store
from bridge.alarms.evaluate import US, Series, Transition
from bridge.alarms.rules import parse_rule
from tests.api.harness import ApiProcess, Reply, create_key
from tests.conftest import Stack, _clone, run
from tests.integration.harness import Scenario, free_port_block

RULE = {
    "name": "hot",
    "kind": "threshold",
    "severity": "critical",
    "select": {"metric": "temperature"},
    "direction": "above",
    "threshold": 100.0,
    "clear_threshold": 90.0,
    "for_s": 60,
}


class Client:
    def __init__(self, api: ApiProcess, read: str, write: str, db_url: str) -> None:
        self.api, self.read, self.write, self.db_url = api, read, write, db_url

    def get(self, path: str, **params: object) -> Reply:
        query = urlencode(params)
        return self.api.request("GET", path + ("?" + query if query else ""), self.read)

    def send(self, method: str, path: str, body: object = None, key: str | None = None) -> Reply:
        data = None if body is None else orjson.dumps(body)
        return self.api.request(method, path, key or self.write, data)


@pytest.fixture(scope="module")
def client(
    stack: Stack, templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    tmp: Path = tmp_path_factory.mktemp("alarms-api")
    clone = _clone(stack, templates["plain"])
    try:
        db_url = next(clone)
        config = Scenario(stack, db_url, tmp).write_config(free_port_block(1))
        api = ApiProcess(config, tmp).start()
        try:
            yield Client(api, create_key(config, "read"), create_key(config, "write"), db_url)
        finally:
            api.kill()
    finally:
        clone.close()


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"kind": "temperature"}, "kind", "kind 'temperature' is unknown"),
        ({"for_s": -60}, "for_s", "cannot be negative"),
        ({"clear_threshold": 105.0}, "rule", "must be at or below the threshold (100)"),
        ({"for_s": 30 * 86400}, "for_s", "at most 604800 s"),
        ({"window_s": 60}, "window_s", "not a field of this kind of rule"),
    ],
)
def test_a_bad_rule_is_a_422_naming_the_problem(
    client: Client, change: dict[str, object], field: str, says: str
) -> None:
    reply = client.send("POST", "/api/v1/alarms/rules", RULE | change | {"name": "bad"})
    assert reply.status == 422, reply.body
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem = reply.json()
    assert problem["title"] == "Invalid Rule"
    assert any(
        e["detail"].startswith(f"{field}: ") and says in e["detail"] for e in problem["errors"]
    )
    assert all(r["name"] != "bad" for r in client.get("/api/v1/alarms/rules").json()["items"])


def test_rule_crud(client: Client) -> None:
    made = client.send("POST", "/api/v1/alarms/rules", RULE | {"name": "crud"})
    assert made.status == 201, made.body
    rule = made.json()
    assert rule["kind"] == "threshold"
    assert rule["for_s"] == 60
    assert client.send("POST", "/api/v1/alarms/rules", RULE | {"name": "crud"}).status == 409
    assert client.send("POST", "/api/v1/alarms/rules", RULE, key=client.read).status == 403
    path = f"/api/v1/alarms/rules/{rule['id']}"
    assert client.get(path).json()["name"] == "crud"
    replaced = client.send("PUT", path, RULE | {"name": "crud", "threshold": 110.0})
    assert replaced.status == 200, replaced.body
    assert client.get(path).json()["threshold"] == 110.0
    assert client.send("PUT", path, RULE | {"name": "crud", "count": 0}).status == 422
    assert client.send("DELETE", path).status == 204
    assert client.get(path).status == 404
    assert client.send("DELETE", path).status == 404


async def _raise_alarms(db_url: str, rule_id: int, devices: list[tuple[str, str]]) -> None:
    """Alarms as the evaluator writes them (bridge.alarms.store.commit)."""
    conn = await asyncpg.connect(db_url)
    try:
        rule = parse_rule(RULE | {"name": "flow"})
        for i, (device, site) in enumerate(devices):
            at = (1_800_000_000 + i * 60) * US
            t = Transition(rule_id, device, "temperature", site, "raised", at, 101.0 + i, 101.0)
            key = (rule_id, device, "temperature")
            await store.commit(
                conn,
                stream="test",
                last_id=f"{i + 1}-0",
                dirty=[(key, Series(open=True, peak=101.0 + i))],
                transitions=[t],
                rules={rule_id: rule},
            )
    finally:
        await conn.close()


async def _events(db_url: str, alert_id: int) -> list[str]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT transition FROM alarm_events WHERE alert_id = $1 ORDER BY id", alert_id
        )
        return [r["transition"] for r in rows]
    finally:
        await conn.close()


def test_anomalies_ack_and_clear(client: Client) -> None:
    # with no parameters: the last 24 hours (these alarms are in 2027)
    assert client.get("/api/v1/analytics/anomalies").status == 200
    rule_id = client.send("POST", "/api/v1/alarms/rules", RULE | {"name": "flow"}).json()["id"]
    devices = [("p1", "s1"), ("p2", "s1"), ("p3", "s2")]
    run(_raise_alarms(client.db_url, rule_id, devices))
    window: dict[str, Any] = {"start": "2027-01-01T00:00:00Z", "end": "2027-02-01T00:00:00Z"}
    page = client.get("/api/v1/analytics/anomalies", **window).json()
    assert [a["device_id"] for a in page["items"]] == ["p3", "p2", "p1"]  # newest first
    assert page["next"] is None
    first = page["items"][2]
    assert first["status"] == "active"
    assert first["rule"] == "flow"
    assert first["value"] == 101.0
    assert first["started_at"].startswith("2027-01-15T08:00:00")
    # cursor paging: one at a time, each once
    seen, after = [], None
    while True:
        params = window | {"limit": 1} | ({"after": after} if after else {})
        page = client.get("/api/v1/analytics/anomalies", **params).json()
        seen += [a["device_id"] for a in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ["p3", "p2", "p1"]

    # filters
    def ids(**f: object) -> list[str]:
        return [
            a["device_id"]
            for a in client.get("/api/v1/analytics/anomalies", **window, **f).json()["items"]
        ]

    assert ids(site="s1") == ["p2", "p1"]
    assert ids(device_id="p3") == ["p3"]
    assert ids(severity="minor") == []
    assert ids(severity="critical", status="active") == ["p3", "p2", "p1"]
    # ack: who, when, note; again: unchanged; clear; ack after clear: 409
    path = f"/api/v1/alerts/{first['id']}"
    acked = client.send("POST", path + "/ack", {"by": "alice", "note": "valve checked"})
    assert acked.status == 200, acked.body
    body = acked.json()
    assert (body["status"], body["acknowledged_by"], body["note"]) == (
        "acknowledged",
        "alice",
        "valve checked",
    )
    assert client.send("POST", path + "/ack", {"by": "bob"}).json()["acknowledged_by"] == "alice"
    assert ids(status="acknowledged") == ["p1"]
    cleared = client.send("POST", path + "/clear").json()
    assert cleared["status"] == "resolved"
    assert cleared["ended_at"] is not None
    assert client.send("POST", path + "/ack").status == 409
    assert client.send("POST", "/api/v1/alerts/999999/ack").status == 404
    assert client.send("POST", path + "/ack", {"who": "x"}).status == 400
    assert run(_events(client.db_url, first["id"])) == ["raised", "acknowledged", "cleared"]


def test_the_alarm_routes_are_in_the_openapi_document(client: Client) -> None:
    doc = client.api.request("GET", "/openapi.json").json()
    for path, method in [
        ("/api/v1/analytics/anomalies", "get"),
        ("/api/v1/alerts/{alert_id}/ack", "post"),
        ("/api/v1/alerts/{alert_id}/clear", "post"),
        ("/api/v1/alarms/rules", "post"),
        ("/api/v1/alarms/rules/{rule_id}", "put"),
        ("/api/v1/alarms/rules/{rule_id}", "delete"),
    ]:
        assert method in doc["paths"][path], (path, method)
    spec = doc["components"]["schemas"]["AlarmRuleSpec"]
    assert set(spec["discriminator"]["mapping"]) == {
        "threshold",
        "rate",
        "stuck",
        "no_data",
        "outlier",
    }
