"""`bridge doctor` against real services: each check sees a planted problem
and names its fix, and says ok (or why it does not apply) otherwise."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import Settings
from bridge.doctor.finding import Finding, Report, Status
from bridge.doctor.options import Options
from bridge.doctor.run import doctor
from tests.conftest import ROOT, Stack
from tests.doctor.conftest import make_settings
from tests.integration.harness import (
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    free_port_block,
    running,
    seed_fleet,
    wait_until,
)


def examine(settings: Settings, **options: object) -> Report:
    return asyncio.run(doctor(settings, Options(**options)))  # type: ignore[arg-type]


def only(report: Report, check: str, status: Status) -> list[Finding]:
    found = [f for f in report.by_check(check) if f.status is status]
    assert found, f"no {status} finding for {check}:\n" + "\n".join(report.lines())
    return found


@pytest.fixture
def scenario(stack: Stack, plain_db: str, tmp_path: Path) -> Scenario:
    return Scenario(stack, plain_db, tmp_path)


def test_a_running_stack_reports_the_essentials(stack: Stack, scenario: Scenario) -> None:
    bridge = BridgeProcess(scenario)
    with running(bridge) as b:
        b.wait_ready()
        settings = make_settings(stack, scenario.db_url)
        report = examine(settings, bridge_urls=[b.url("")], memory_limit_mb=4096)
    for check in ("pool use", "redis policy", "broker queues", "timescaledb jobs", "memory"):
        assert report.by_check(check), check
        assert all(f.status is not Status.ERROR for f in report.by_check(check)), "\n".join(
            report.lines()
        )
    (jobs,) = report.by_check("timescaledb jobs")
    if jobs.status is Status.SKIPPED:  # the server has no TimescaleDB
        assert "not TimescaleDB" in jobs.summary
    else:  # it has, in this plain database too: no job failed
        assert jobs.status is Status.OK, jobs


def test_a_saturated_tiny_pool(stack: Stack, scenario: Scenario, publisher: Publisher) -> None:
    bridge = BridgeProcess(scenario, pool_size=1)
    messages, expected = seed_fleet(scenario, devices=4, readings=5)
    with running(bridge) as b:
        b.wait_ready()
        blocker = _Locker(scenario.db_url)
        try:
            publisher.publish_all(messages)

            def saturated() -> bool:
                m = b.metrics()
                return (
                    m.get('bridge_db_pool_connections{state="used"}') == 1
                    and m.get('bridge_db_pool_connections{state="idle"}') == 0
                )

            wait_until(saturated, 30, "the bridge's one connection busy")
            wait_until(lambda: blocker.waiters() > 0, 30, "the commit waits on the lock")
            settings = make_settings(stack, scenario.db_url, database={"pool_size": 1})
            report = examine(settings, bridge_urls=[b.url("")], memory_limit_mb=4096)
        finally:
            blocker.release()
        (full,) = [f for f in only(report, "pool use", Status.PROBLEM) if "saturated" in f.summary]
        assert "database.pool_size" in full.fix
        (lock,) = only(report, "pool use", Status.WARN)
        assert "wait on a lock" in lock.summary
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 60, "all stored")
    assert_exactly_once(scenario.db_url, expected)


class _Locker:
    """Holds ACCESS EXCLUSIVE on telemetry in an open transaction."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(db_url))
        self.loop.run_until_complete(self.conn.execute("BEGIN; LOCK TABLE telemetry"))

    def waiters(self) -> int:
        return int(
            self.loop.run_until_complete(
                self.conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        )

    def release(self) -> None:
        self.loop.run_until_complete(self.conn.execute("ROLLBACK"))
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def test_pools_larger_than_the_server_allows(stack: Stack, plain_db: str) -> None:
    report = examine(make_settings(stack, plain_db), api_replicas=200)
    (finding,) = only(report, "pool use", Status.PROBLEM)
    assert "the server allows" in finding.summary
    assert "max_connections" in finding.fix
    quiet = examine(make_settings(stack, plain_db), api_replicas=1)
    assert [f.status for f in quiet.by_check("pool use")] == [Status.OK]


def test_redis_without_maxmemory(
    stack: Stack, plain_db: str, own_redis: Callable[..., str]
) -> None:
    url = own_redis()  # Redis's defaults: no maxmemory, noeviction
    report = examine(make_settings(stack, plain_db, url))
    problems = only(report, "redis policy", Status.PROBLEM)
    assert any("no maxmemory" in f.summary and "maxmemory" in f.fix for f in problems)
    assert any("noeviction" in f.summary and "allkeys-lru" in f.fix for f in problems)


def test_redis_as_a_cache(stack: Stack, plain_db: str, own_redis: Callable[..., str]) -> None:
    url = own_redis(
        "--maxmemory",
        "64mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--save",
        "",
        "--appendonly",
        "no",
    )
    report = examine(make_settings(stack, plain_db, url))
    (finding,) = report.by_check("redis policy")
    assert finding.status is Status.OK, finding
    assert "allkeys-lru" in finding.summary


def test_broker_queue_depth(stack: Stack, plain_db: str) -> None:
    topic = f"doctor/{uuid.uuid4().hex[:8]}"
    client_id = f"doctor-q-{uuid.uuid4().hex[:6]}"
    _session(stack, client_id, topic, expiry=600)  # subscribed, then offline: its queue fills
    try:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", stack.mqtt_port)
        pub.loop_start()
        infos = [pub.publish(topic, b"x" * 10, qos=1) for _ in range(500)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        settings = make_settings(stack, plain_db)
        # $SYS is refreshed every sys_interval (10 s by default).
        seen: list[Report] = []

        def reported() -> bool:
            seen.append(examine(settings, queue_warn=450))
            return any(f.status is Status.WARN for f in seen[-1].by_check("broker queues"))

        wait_until(reported, 40, "the queue depth reported")
        (finding,) = only(seen[-1], "broker queues", Status.WARN)
        assert finding.data["queued"] >= 500
        assert "bridge retire" in finding.fix
    finally:
        _session(stack, client_id, topic, expiry=0)  # end it: the queue goes


def _session(stack: Stack, client_id: str, topic: str, expiry: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    done = threading.Event()
    client.on_subscribe = lambda *a: done.set()
    client.connect("127.0.0.1", stack.mqtt_port, clean_start=expiry == 0, properties=props)
    client.loop_start()
    if expiry:
        client.subscribe(topic, qos=1)
        assert done.wait(10)
    client.disconnect()
    client.loop_stop()


def test_memory_against_a_limit(stack: Stack, scenario: Scenario) -> None:
    bridge = BridgeProcess(scenario)
    with running(bridge) as b:
        b.wait_ready()
        settings = make_settings(stack, scenario.db_url)
        tight = examine(settings, bridge_urls=[b.url("")], memory_limit_mb=1)
        roomy = examine(settings, bridge_urls=[b.url("")])  # this host's limit
    (finding,) = only(tight, "memory", Status.PROBLEM)
    assert "of 1 MiB" in finding.summary
    assert "mqtt.receive_maximum" in finding.fix
    assert [f.status for f in roomy.by_check("memory")] == [Status.OK]


def test_a_long_running_statement(stack: Stack, plain_db: str) -> None:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(plain_db))
    sleeper = loop.create_task(conn.execute("SELECT pg_sleep(60)"))
    loop.run_until_complete(asyncio.sleep(1.5))
    try:
        report = examine(make_settings(stack, plain_db), slow_query_s=1.0)
        findings = [f for f in only(report, "slow queries", Status.WARN) if "pg_sleep" in f.summary]
        assert findings
        assert "pg_cancel_backend" in findings[0].fix
        statements = [f for f in report.by_check("slow queries") if f.status is Status.SKIPPED]
        assert "CREATE EXTENSION pg_stat_statements" in statements[0].fix
    finally:
        sleeper.cancel()
        loop.run_until_complete(asyncio.gather(sleeper, return_exceptions=True))
        loop.run_until_complete(conn.close())
        loop.close()


def test_a_missing_partition(stack: Stack, plain_db: str) -> None:
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)

    async def plant() -> None:
        conn = await asyncpg.connect(plain_db)
        await conn.execute(f"DROP TABLE IF EXISTS telemetry_p{tomorrow:%Y%m%d}")
        await conn.execute(
            "INSERT INTO telemetry (time, device_id, metric, value) VALUES ($1, 'd', 'm', 1)",
            dt.datetime.combine(tomorrow, dt.time(12), dt.UTC),
        )
        await conn.close()

    asyncio.run(plant())
    report = examine(make_settings(stack, plain_db))
    warnings = only(report, "partitions", Status.WARN)
    assert any(f"{tomorrow:%Y-%m-%d}" in f.summary for f in warnings)
    assert any("1 rows wait in telemetry_default" in f.summary for f in warnings)
    assert all("bridge db maintain" in f.fix for f in warnings)


def test_a_replica_url_that_is_a_primary(stack: Stack, plain_db: str) -> None:
    report = examine(make_settings(stack, plain_db), replica_url=plain_db)
    (finding,) = only(report, "replica lag", Status.PROBLEM)
    assert "not in recovery" in finding.summary


def test_timescaledb_failed_job(stack: Stack, tsdb_db: str) -> None:
    """A job that fails in TimescaleDB's own scheduler (not a foreground
    run_job, which records nothing) is reported with its error."""

    async def plant() -> None:
        conn = await asyncpg.connect(tsdb_db)
        try:
            await conn.execute(
                "CREATE PROCEDURE doctor_fails(job_id int, config jsonb) LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'planted failure'; END$$"
            )
            # A database cloned from a template has no scheduler until asked.
            await conn.execute("SELECT _timescaledb_functions.start_background_workers()")
            job = await conn.fetchval(
                "SELECT add_job('doctor_fails', '1 hour', initial_start => now())"
            )
            for _ in range(300):
                status = await conn.fetchval(
                    "SELECT last_run_status FROM timescaledb_information.job_stats WHERE job_id = $1",
                    job,
                )
                if status == "Failed":
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the planted job did not run in 30 s")
        finally:
            await conn.close()

    asyncio.run(plant())
    report = examine(make_settings(stack, tsdb_db))
    # Other jobs may fail beside it (policy_compression was seen cancelled as
    # the scheduler started): the planted one must be among the problems.
    problems = only(report, "timescaledb jobs", Status.PROBLEM)
    (failed,) = [f for f in problems if "doctor_fails" in f.summary]
    assert "run_job" in failed.fix
    errors = only(report, "timescaledb jobs", Status.WARN)
    assert any("planted failure" in f.summary for f in errors)


def test_services_down_are_errors_not_crashes(stack: Stack, plain_db: str) -> None:
    closed = free_port_block(2)
    settings = make_settings(
        stack, plain_db, f"redis://127.0.0.1:{closed}/0", mqtt={"port": closed + 1}
    )
    report = examine(settings, bridge_urls=[f"http://127.0.0.1:{closed}"], timeout_s=2)
    for check in ("redis policy", "broker queues", "memory"):
        assert [f.status for f in report.by_check(check)] == [Status.ERROR], check
    assert report.by_check("pool use")  # the database checks still ran
    assert not report.healthy


def test_the_command_line(stack: Stack, plain_db: str) -> None:
    env = {
        "BRIDGE_DATABASE__URL": plain_db,
        "BRIDGE_REDIS__URL": stack.redis_url,
        "BRIDGE_MQTT__PORT": str(stack.mqtt_port),
        "BRIDGE_HTTP__PORT": "0",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "doctor", "--api-url", "http://127.0.0.1:9", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    checks = {f["check"] for f in report["findings"]}
    assert {"pool use", "redis policy", "broker queues", "timescaledb jobs"} <= checks
    assert done.returncode == 1  # the API address answers nothing: an error finding
    assert report["healthy"] is False


def test_broker_drops(stack: Stack, plain_db: str, tmp_path: Path) -> None:
    """A broker of the test's own whose sessions queue 10 messages at most;
    an offline subscriber is sent 50, so 40 are dropped."""
    port = free_port_block(1)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 10\nmax_inflight_messages 10\nsys_interval 1\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        own = dataclasses.replace(stack, mqtt_port=port)
        wait_until(lambda: _listening(port), 20, "own broker listening")
        topic = f"doctor/{uuid.uuid4().hex[:8]}"
        _session(own, "doctor-drops", topic, expiry=600)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        for info in [pub.publish(topic, b"x", qos=1) for _ in range(50)]:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        settings = make_settings(own, plain_db)
        seen: list[Report] = []

        def reported() -> bool:
            seen.append(examine(settings))
            return any(f.status is Status.PROBLEM for f in seen[-1].by_check("broker queues"))

        wait_until(reported, 20, "the drops reported")
        (finding,) = only(seen[-1], "broker queues", Status.PROBLEM)
        assert finding.data["dropped"] >= 40
        assert "max_queued_messages" in finding.summary
        assert "bridge retire" in finding.fix
    finally:
        broker.terminate()
        broker.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
