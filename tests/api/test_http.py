"""The read API over HTTP, as a client sees it: a real `bridge api` process
reading what a real `bridge run` ingested from MQTT into PostgreSQL and Redis.

One deployment serves the whole module (ingesting three hours of a fleet
takes a few seconds); tests that change it (ingest, outages) say so.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import orjson
import pytest

from bridge.api.series import CLOCK_MARGIN_US
from bridge.config import Settings
from bridge.doctor.finding import Status
from bridge.doctor.options import Options
from bridge.doctor.services import check_process
from tests.api.harness import ApiProcess, Reply, create_key
from tests.conftest import Stack, _clone
from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    count_rows,
    fetch_rows,
    seed_message,
    stack_service,
    wait_until,
)

S = 1_000_000
DEVICES = 10
SPACING_S = 10
HISTORY_S = 3 * 3600
ORIGIN = "https://grafana.example"


@dataclass
class Deployment:
    scenario: Scenario
    bridge: BridgeProcess
    api: ApiProcess
    read_key: str
    write_key: str
    both_key: str
    devices: list[str]
    live_from_us: int  # points from here on were published after the cache could vouch

    def get(self, path: str, key: str | None = "read", **params: object) -> Reply:
        token = {"read": self.read_key, "write": self.write_key, "both": self.both_key}.get(
            key or "", key
        )
        query = urlencode([(k, v) for k, vs in params.items() for v in _list(vs)])
        return self.api.request("GET", path + ("?" + query if query else ""), token)

    def post(self, path: str, doc: object, key: str = "write") -> Reply:
        token = {"read": self.read_key, "write": self.write_key, "both": self.both_key}[key]
        return self.api.request("POST", path, token, orjson.dumps(doc))

    def rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return fetch_rows(self.scenario.db_url, sql, *args)


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else [value]


def iso(time_us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_us // S)) + f".{time_us % S:06d}Z"


@pytest.fixture(scope="module")
def deployment(
    stack: Stack, templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("api")
    clone = _clone(stack, templates["plain"])
    try:
        yield from _deploy(stack, next(clone), tmp)
    finally:
        clone.close()  # drops the database


def _deploy(stack: Stack, db_url: str, tmp: Path) -> Iterator[Deployment]:
    scenario = Scenario(stack, db_url, tmp, extra="\n[limits]\nmax_future_skew_s = 2\n")
    bridge = BridgeProcess(scenario).start().wait_ready()
    started_us = time.time_ns() // 1000
    devices = [f"{scenario.tag}-dev{d:02d}" for d in range(DEVICES)]
    publisher = Publisher(stack)
    try:
        now_us = time.time_ns() // 1000
        first_us = (now_us - HISTORY_S * S) // S * S
        messages = [
            (scenario.topic(f"site{d % 2}", dev), seed_message(dev, t, _values(t, d)))
            for t in range(first_us, now_us - 60 * S, SPACING_S * S)
            for d, dev in enumerate(devices)
        ]
        publisher.publish_all(messages)
        # Live points, timed after the bridge's cache writer vouches (its
        # start plus the 2 s allowed skew), so the cache serves them.
        wait_until(lambda: time.time_ns() // 1000 > started_us + 4 * S, 30, "the cache")
        live_from_us = time.time_ns() // 1000 - S
        live = [
            (scenario.topic(f"site{d % 2}", dev), seed_message(dev, t, _values(t, d)))
            for t in range(live_from_us, live_from_us + S, 100_000)
            for d, dev in enumerate(devices)
        ]
        publisher.publish_all(live)
        publisher.wait_acked()
        expected = (len(messages) + len(live)) * 3
        wait_until(lambda: count_rows(db_url) == expected, 120, f"{expected} rows")
    finally:
        publisher.close()
    config = bridge.config
    api = ApiProcess(config, tmp, {"BRIDGE_API__CORS_ORIGINS": f'["{ORIGIN}"]'})
    api.start()
    try:
        yield Deployment(
            scenario,
            bridge,
            api,
            create_key(config, "read"),
            create_key(config, "write"),
            create_key(config, "read", "write"),
            devices,
            live_from_us,
        )
    finally:
        api.kill()
        bridge.kill()


def _values(t: int, d: int) -> dict[str, float]:
    return {"flow_rate": 1000 + (t // S) % 500 + d / 10, "pip": 2500.25 + d, "temperature": 70.2}


def assert_problem(reply: Reply, status: int) -> dict[str, object]:
    assert reply.status == status, (reply.status, reply.body[:500])
    assert reply.headers["content-type"].startswith("application/problem+json")
    doc = reply.json()
    assert doc["status"] == status
    assert doc["title"]
    assert doc["detail"]
    return doc  # type: ignore[no-any-return]


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "path", ["/api/v1/devices", "/api/v1/telemetry/x", "/api/v1/analytics/summary"]
)
def test_reads_need_a_key(deployment: Deployment, path: str) -> None:
    doc = assert_problem(deployment.get(path, key=None), 401)
    assert "apikey create" in str(doc["detail"])
    assert_problem(deployment.get(path, key="bk_000000000000_" + "A" * 43), 401)
    assert_problem(deployment.get(path, key="write"), 403)


def test_ingest_needs_the_write_scope(deployment: Deployment) -> None:
    reading = {"device_id": "x", "data": {"m": 1}}
    assert_problem(deployment.post("/api/v1/telemetry", reading, key="read"), 403)
    reply = deployment.api.request("POST", "/api/v1/telemetry", None, orjson.dumps(reading))
    assert_problem(reply, 401)
    assert "www-authenticate" in reply.headers


def test_the_key_may_come_in_x_api_key(deployment: Deployment) -> None:
    reply = deployment.api.request(
        "GET", "/api/v1/devices", headers={"X-API-Key": deployment.read_key}
    )
    assert reply.status == 200


# ------------------------------------------------------------------ devices


def test_device_list_pages_through_every_device(deployment: Deployment) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if after:
            params["after"] = after
        reply = deployment.get("/api/v1/devices", **params)
        assert reply.status == 200, reply.body
        doc = reply.json()
        assert len(doc["items"]) <= 3
        seen += [d["device_id"] for d in doc["items"]]
        pages += 1
        after = doc["next"]
        if after is None:
            break
    ours = [d for d in seen if d in deployment.devices]
    assert ours == sorted(deployment.devices)
    assert pages >= 4


def test_device_filters(deployment: Deployment) -> None:
    doc = deployment.get("/api/v1/devices", site="site1", status="online", limit=1000).json()
    ids = {d["device_id"] for d in doc["items"]} & set(deployment.devices)
    assert ids == set(deployment.devices[1::2])
    assert all(d["status"] == "online" and d["site_id"] == "site1" for d in doc["items"])
    assert deployment.get("/api/v1/devices", status="offline", site="site1").json()["items"] == []
    assert_problem(deployment.get("/api/v1/devices", limit=0), 400)
    assert_problem(deployment.get("/api/v1/devices", limit=100_000), 400)
    assert_problem(deployment.get("/api/v1/devices", status="sleeping"), 400)


def test_device_detail_has_the_latest_value_of_each_metric(deployment: Deployment) -> None:
    device = deployment.devices[3]
    reply = deployment.get(f"/api/v1/devices/{device}")
    assert reply.status == 200, reply.body
    assert reply.headers["x-cache"] == "hit"
    doc = reply.json()
    assert doc["device_id"] == device
    assert doc["site_id"] == "site1"
    [last] = deployment.rows("SELECT max(time) AS t FROM telemetry WHERE device_id = $1", device)
    latest = doc["latest"]
    assert sorted(latest) == ["flow_rate", "pip", "temperature"]
    expected = deployment.rows(
        "SELECT metric, value FROM telemetry WHERE device_id = $1 AND time = $2", device, last["t"]
    )
    assert {r["metric"]: r["value"] for r in expected} == {m: v["value"] for m, v in latest.items()}
    assert_problem(deployment.get("/api/v1/devices/nobody"), 404)
    assert_problem(deployment.get("/api/v1/devices/bad%20id"), 400)


def test_string_values_are_read_back_with_their_latest(deployment: Deployment) -> None:
    device = deployment.devices[4]
    now_us = time.time_ns() // 1000 // S * S
    texts = [(now_us - i * 10 * S, "state", f'run, "{i}" é') for i in range(5)]
    texts += [(now_us - 20 * S, "mode", "auto")]
    deployment.rows(
        "INSERT INTO telemetry_text (time, device_id, metric, text) "
        "SELECT to_timestamp(t / 1e6), $1, m, x FROM unnest($2::int8[], $3::text[], $4::text[]) "
        "AS u(t, m, x) RETURNING 1",
        device,
        *map(list, zip(*texts, strict=True)),
    )
    doc = deployment.get(f"/api/v1/telemetry/{device}/text", start=iso(now_us - 60 * S)).json()
    got = {s["metric"]: [(p["time"], p["text"]) for p in s["points"]] for s in doc["series"]}
    assert got == {
        "mode": [(iso(now_us - 20 * S), "auto")],
        "state": [(iso(t), x) for t, _, x in sorted(texts[:5])],
    }
    assert doc["truncated"] is False
    doc = deployment.get(
        f"/api/v1/telemetry/{device}/text", start=iso(now_us - 60 * S), metric="state", limit=2
    ).json()
    assert [p["text"] for p in doc["series"][0]["points"]] == [texts[4][2], texts[3][2]]
    assert doc["truncated"] is True
    latest = deployment.get(f"/api/v1/devices/{device}").json()["latest_text"]
    assert latest == {
        "mode": {"time": iso(now_us - 20 * S), "text": "auto"},
        "state": {"time": iso(now_us), "text": texts[0][2]},
    }


# ------------------------------------------------------------------ telemetry


def db_series(
    d: Deployment, device: str, start_us: int, end_us: int
) -> dict[str, list[tuple[str, float]]]:
    rows = d.rows(
        "SELECT metric, (extract(epoch FROM time) * 1000000)::bigint AS t, value FROM telemetry "
        "WHERE device_id = $1 AND time >= to_timestamp($2 / 1e6) AND time < to_timestamp($3 / 1e6)"
        " ORDER BY metric, time",
        device,
        start_us,
        end_us,
    )
    out: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        out.setdefault(r["metric"], []).append((iso(r["t"]), r["value"]))
    return out


def api_series(doc: dict[str, object]) -> dict[str, list[tuple[str, float]]]:
    return {
        s["metric"]: [(p["time"], p["value"]) for p in s["points"]]  # type: ignore[index]
        for s in doc["series"]  # type: ignore[attr-defined]
    }


def test_the_last_hour_is_one_seamless_series(deployment: Deployment) -> None:
    device = deployment.devices[0]
    end_us = time.time_ns() // 1000
    start_us = end_us - 3600 * S
    reply = deployment.get(f"/api/v1/telemetry/{device}", start=iso(start_us), end=iso(end_us))
    assert reply.status == 200, reply.body
    doc = reply.json()
    assert doc["resolution"] == "raw"
    # The recent part came from Redis, the rest from the database.
    assert reply.headers["x-cache"] == "hit"
    assert deployment.live_from_us > end_us - 900 * S + CLOCK_MARGIN_US
    got = api_series(doc)
    assert_same_series(got, db_series(deployment, device, start_us, end_us))
    live = [t for t, _ in got["pip"] if t >= iso(deployment.live_from_us)]
    assert len(live) == 10  # the live second, after the history


def assert_same_series(
    got: dict[str, list[tuple[str, float]]], want: dict[str, list[tuple[str, float]]]
) -> None:
    """Equal; if not, says which points are missing or extra, per metric."""
    for metric in sorted(set(got) | set(want)):
        g, w = got.get(metric, []), want.get(metric, [])
        missing = sorted(set(w) - set(g))
        extra = sorted(set(g) - set(w))
        assert not missing, f"{metric}: {len(missing)} missing, e.g. {missing[:3]}"
        assert not extra, f"{metric}: {len(extra)} extra, e.g. {extra[:3]}"
        assert g == w, f"{metric}: same points, other order or duplicates"


def test_default_range_is_the_last_hour(deployment: Deployment) -> None:
    device = deployment.devices[1]
    doc = deployment.get(f"/api/v1/telemetry/{device}", metric="pip").json()
    assert [s["metric"] for s in doc["series"]] == ["pip"]
    span = _parse(doc["end"]) - _parse(doc["start"])
    assert span == 3600 * S


def _parse(text: str) -> int:
    from core.rules import rfc3339_us

    return rfc3339_us(text)


def test_a_day_comes_in_minutes_from_the_rollups(deployment: Deployment) -> None:
    device = deployment.devices[2]
    end_us = time.time_ns() // 1000
    reply = deployment.get(
        f"/api/v1/telemetry/{device}",
        start=str((end_us - 86400 * S) // 1000),  # epoch milliseconds
        end=str(end_us // 1000),
        metric=["flow_rate", "pip"],
    )
    assert reply.status == 200, reply.body
    doc = reply.json()
    assert doc["resolution"] == "1m"
    rows = deployment.rows(
        "SELECT metric, date_trunc('minute', time) AS b, avg(value) AS avg, count(*) AS n "
        "FROM telemetry WHERE device_id = $1 AND metric IN ('flow_rate', 'pip') "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        device,
    )
    got = {
        (s["metric"], p["time"]): (p["value"], p["count"])
        for s in doc["series"]
        for p in s["points"]
    }
    want = {(r["metric"], iso(int(r["b"].timestamp()) * S)): (r["avg"], r["n"]) for r in rows}
    assert got.keys() == want.keys()
    for k, (avg, n) in want.items():
        assert got[k][1] == n
        assert got[k][0] == pytest.approx(avg)
    assert all(len(s["points"]) <= 2000 for s in doc["series"])


def test_bad_ranges_are_refused(deployment: Deployment) -> None:
    path = f"/api/v1/telemetry/{deployment.devices[0]}"
    assert_problem(deployment.get(path, start="yesterday"), 400)
    assert_problem(
        deployment.get(path, start="2026-11-27T10:00:00Z", end="2026-11-27T09:00:00Z"), 400
    )
    assert_problem(
        deployment.get(path, start="2000-01-01T00:00:00Z", end="2026-01-01T00:00:00Z"), 400
    )
    assert_problem(deployment.get(path, step="5m"), 400)


def test_raw_beyond_the_bound_says_what_to_ask_instead(
    deployment: Deployment, tmp_path: Path
) -> None:
    # 100 points per series: raw may carry 5x that; three hours hold 1,080.
    api = ApiProcess(
        deployment.bridge.config, tmp_path, {"BRIDGE_API__SERIES_POINTS": "100"}
    ).start()
    try:
        path = (
            f"/api/v1/telemetry/{deployment.devices[0]}?step=raw&start={time.time() - 4 * 3600:.3f}"
        )
        doc = assert_problem(api.request("GET", path, deployment.read_key), 422)
        assert "step=1m" in str(doc["detail"])
        auto = api.request("GET", path.replace("step=raw", "step=auto"), deployment.read_key)
        # 240 minutes would exceed the 100 points too: hours.
        assert auto.json()["resolution"] == "1h"
        assert all(len(x["points"]) <= 100 for x in auto.json()["series"])
    finally:
        api.kill()


# ------------------------------------------------------------------ analytics


def test_summary_matches_the_raw_rows(deployment: Deployment) -> None:
    device = deployment.devices[4]
    end_us = time.time_ns() // 1000
    start_us = end_us - 2 * 3600 * S - 17 * S
    reply = deployment.get(
        "/api/v1/analytics/summary", device_id=device, start=iso(start_us), end=iso(end_us)
    )
    assert reply.status == 200, reply.body
    got = {s["metric"]: s for s in reply.json()["series"]}
    rows = deployment.rows(
        "SELECT metric, count(*) AS n, min(value) AS lo, max(value) AS hi, avg(value) AS avg, "
        "(array_agg(value ORDER BY time DESC))[1] AS last FROM telemetry "
        "WHERE device_id = $1 AND time >= to_timestamp($2 / 1e6) AND time < to_timestamp($3 / 1e6) "
        "GROUP BY metric",
        device,
        start_us,
        end_us,
    )
    assert set(got) == {r["metric"] for r in rows}
    for r in rows:
        s = got[r["metric"]]
        assert (s["count"], s["min"], s["max"], s["last"]) == (r["n"], r["lo"], r["hi"], r["last"])
        assert s["avg"] == pytest.approx(r["avg"])


def test_fleet_summary(deployment: Deployment) -> None:
    doc = deployment.get("/api/v1/analytics/summary", metric="pip").json()
    ours = [s for s in doc["series"] if s["device_id"] in deployment.devices]
    assert {s["device_id"] for s in ours} == set(deployment.devices)
    assert all(s["metric"] == "pip" for s in doc["series"])


# ------------------------------------------------------------------ ingest


def test_a_submitted_reading_is_committed_before_the_answer(deployment: Deployment) -> None:
    device = f"{deployment.scenario.tag}-http"
    t = time.time_ns() // 1000 - 5 * S
    reading = {
        "device_id": device,
        "site_id": "s9",
        "timestamp": iso(t),
        "data": {"flow_rate": 1234.5, "pip": 2700.1, "temperature": 70.2},
    }
    reply = deployment.post("/api/v1/telemetry", reading)
    assert reply.status == 202, reply.body
    assert reply.json() == {"accepted": 3, "durable": "committed"}
    rows = deployment.rows("SELECT metric, value FROM telemetry WHERE device_id = $1", device)
    assert {r["metric"]: r["value"] for r in rows} == reading["data"]
    # Sending it again (a client retry) stores nothing twice.
    assert deployment.post("/api/v1/telemetry", reading).status == 202
    assert len(deployment.rows("SELECT 1 FROM telemetry WHERE device_id = $1", device)) == 3
    [registered] = deployment.rows("SELECT site_id FROM devices WHERE device_id = $1", device)
    assert registered["site_id"] == "s9"


def test_a_batch_with_a_bad_point_stores_nothing_and_says_why(deployment: Deployment) -> None:
    device = f"{deployment.scenario.tag}-batch"
    good = {"device_id": device, "data": {"a": 1.0}}
    readings = [
        good,
        {"device_id": device, "data": {"b": "NaN-ish"}},
        {"device_id": device, "timestamp": "2999-01-01T00:00:00Z", "data": {"c": 1}},
    ]
    doc = assert_problem(deployment.post("/api/v1/telemetry/batch", {"readings": readings}), 422)
    assert [(e["reading"], e["metric"], e["reason"]) for e in doc["errors"]] == [  # type: ignore[union-attr]
        (1, "b", "bad_value"),
        (2, None, "time_in_future"),
    ]
    assert deployment.rows("SELECT 1 FROM telemetry WHERE device_id = $1", device) == []
    reply = deployment.post("/api/v1/telemetry/batch", {"readings": [good, good]}, key="both")
    assert reply.status == 202, reply.body
    assert len(deployment.rows("SELECT 1 FROM telemetry WHERE device_id = $1", device)) == 1


def test_a_body_that_is_not_json(deployment: Deployment) -> None:
    reply = deployment.api.request("POST", "/api/v1/telemetry", deployment.write_key, b"{not json")
    assert_problem(reply, 400)
    big = b'{"device_id": "x", "data": {"m": 1}, "pad": "' + b"x" * 300_000 + b'"}'
    assert_problem(
        deployment.api.request("POST", "/api/v1/telemetry", deployment.write_key, big), 413
    )


# ------------------------------------------------------------------ operation


def test_health_readiness_metrics_and_openapi(deployment: Deployment) -> None:
    api = deployment.api
    health = api.request("GET", "/healthz")
    assert health.status == 200
    assert api.proc is not None
    assert health.json()["pid"] == api.proc.pid
    # bridge doctor on this host finds the API's memory and its limit by that pid
    url = f"http://127.0.0.1:{api.port}"
    (memory,) = [f for f in check_process(url, "api", Settings(), Options()) if f.check == "memory"]
    assert memory.status is Status.OK, memory
    ready = api.request("GET", "/readyz")
    assert ready.status == 200
    assert ready.json()["checks"]["database"] == "ok"
    deployment.get(f"/api/v1/telemetry/{deployment.devices[0]}")
    metrics = api.request("GET", "/metrics").body.decode()
    assert "http_request_duration_seconds_bucket{" in metrics
    assert 'route="/api/v1/telemetry/{device_id}"' in metrics
    assert "cache_requests_total" in metrics
    assert "cache_hits_total" in metrics
    spec = api.request("GET", "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/telemetry/{device_id}",
        "/api/v1/telemetry",
        "/api/v1/telemetry/batch",
        "/api/v1/analytics/summary",
    ):
        assert path in spec["paths"], path


def test_cors_allows_only_the_configured_origin(deployment: Deployment) -> None:
    ok = deployment.api.request(
        "GET", "/api/v1/devices", deployment.read_key, headers={"Origin": ORIGIN}
    )
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    other = deployment.api.request(
        "GET", "/api/v1/devices", deployment.read_key, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_redis_down_serves_from_the_database_and_says_so(deployment: Deployment) -> None:
    device = deployment.devices[5]
    end_us = time.time_ns() // 1000
    start_us = end_us - 1800 * S
    path = f"/api/v1/telemetry/{device}"
    stack_service("down", "redis")
    try:
        reply = deployment.get(path, start=iso(start_us), end=iso(end_us))
        assert reply.status == 200, reply.body
        assert reply.headers["x-cache"] == "unavailable"
        assert_same_series(
            api_series(reply.json()), db_series(deployment, device, start_us, end_us)
        )
        detail = deployment.get(f"/api/v1/devices/{device}")
        assert detail.status == 200
        assert detail.headers["x-cache"] == "unavailable"
        assert sorted(detail.json()["latest"]) == ["flow_rate", "pip", "temperature"]
        assert deployment.api.request("GET", "/readyz").status == 200
    finally:
        stack_service("up", "redis")


def test_database_down_is_503_and_not_ready(deployment: Deployment, tmp_path: Path) -> None:
    api = ApiProcess(
        deployment.bridge.config,
        tmp_path,
        {
            "BRIDGE_DATABASE__URL": "postgresql://postgres@127.0.0.1:1/none",
            "BRIDGE_DATABASE__CONNECT_TIMEOUT_S": "1",
        },
    ).start()
    try:
        assert api.request("GET", "/healthz").status == 200
        assert_problem(api.request("GET", "/readyz"), 503)
        doc = assert_problem(api.request("GET", "/api/v1/devices", deployment.read_key), 503)
        assert "PostgreSQL" in str(doc["detail"])
        assert api.request("GET", "/api/v1/devices", deployment.read_key).headers.get("retry-after")
    finally:
        assert api.stop() == 0


def test_sigterm_stops_the_api_cleanly(deployment: Deployment, tmp_path: Path) -> None:
    api = ApiProcess(deployment.bridge.config, tmp_path).start()
    assert api.request("GET", "/api/v1/devices", deployment.read_key).status == 200
    assert api.stop() == 0


def test_a_killed_api_leaves_its_port_free(deployment: Deployment, tmp_path: Path) -> None:
    api = ApiProcess(deployment.bridge.config, tmp_path).start()
    assert api.proc is not None
    os.kill(api.proc.pid, signal.SIGKILL)  # as an OOM kill would
    api.proc.wait()
    again = ApiProcess(deployment.bridge.config, tmp_path)
    again.port = api.port  # the same port: free again
    try:
        again.start()
        assert again.request("GET", "/api/v1/devices", deployment.read_key).status == 200
    finally:
        again.kill()


def test_sparkplug_devices_take_their_status_from_births_and_deaths(
    deployment: Deployment,
) -> None:
    """devices.lifecycle (Sparkplug BIRTH online, DEATH offline) wins over
    last-point freshness, in the list, its status filter and the detail."""
    deployment.rows(
        "INSERT INTO devices (device_id, site_id, last_seen, lifecycle) VALUES "
        "('spb-dead', 'spb-site', now(), 'offline'), ('spb-born', 'spb-site', NULL, 'online') "
        "RETURNING device_id"
    )
    listed = deployment.get("/api/v1/devices", site="spb-site").json()["items"]
    assert {d["device_id"]: d["status"] for d in listed} == {
        "spb-born": "online",
        "spb-dead": "offline",
    }
    online = deployment.get("/api/v1/devices", site="spb-site", status="online").json()["items"]
    assert [d["device_id"] for d in online] == ["spb-born"]
    offline = deployment.get("/api/v1/devices", site="spb-site", status="offline").json()["items"]
    assert [d["device_id"] for d in offline] == ["spb-dead"]
    assert deployment.get("/api/v1/devices/spb-dead").json()["status"] == "offline"
