"""OPC UA against a real asyncua server (tests/edge/opcua_server.py, in this
process): the agent, a real `edge-agent run` subprocess, subscribes to or
polls its nodes. The server counts every value change the test makes; what
reaches the spool and the database must be exactly those changes (and the
initial values), each once.

- values: 1,000 nodes changing, through the bridge to the database;
- restart: the server stops for 10 s and comes back; the agent resubscribes,
  spools nothing twice, and counts the gap;
- security: Basic256Sha256 SignAndEncrypt with certificates and a login
  works; a server certificate other than the trusted one, a client
  certificate the server does not trust, and a wrong password are refused
  with one clear log line each; trust on first use saves the certificate;
- limits: a server that refuses reads of more than 50 nodes and monitored
  item calls of more than 100 still serves 1,000 polled and 300 subscribed
  nodes, and one whose limit says more than it takes gets smaller chunks;
- a browse path resolves, and an absolute deadband is asked of the server;
- types: Bad statuses counted by status, strings counted and skipped,
  arrays flattened up to the bound, booleans stored as 1/0.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua

from tests.conftest import Stack
from tests.edge.harness import Agent, uplink_toml
from tests.edge.opcua_server import OpcServer, make_cert, node_id
from tests.integration.harness import (
    BridgeProcess,
    Key,
    Scenario,
    assert_exactly_once,
    count_rows,
    fetch_rows,
    free_port_block,
    running,
    wait_until,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Row = tuple[str, str, int, float]


def us(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - EPOCH) // dt.timedelta(microseconds=1)


def device_metric(i: int) -> tuple[str, str]:
    """Node i's device (100 nodes each) and metric."""
    return f"line-{i // 100}", f"v{i:04d}"


def expected_row(server: OpcServer, i: int) -> Row:
    """What the server holds for node i now, as the agent must spool it."""
    dv = server.values[i]
    assert dv.SourceTimestamp is not None
    assert dv.Value is not None
    device, metric = device_metric(i)
    return device, metric, us(dv.SourceTimestamp), float(dv.Value.Value)


def nodes_toml(indexes: range, **group: Any) -> str:
    settings = {"mode": "subscription", "publishing_interval_s": 0.2, "interval_s": 0.0} | group
    out = "[[opcua.servers.groups]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
    for i in indexes:
        device, metric = device_metric(i)
        out += (
            f'[[opcua.servers.groups.nodes]]\nnode_id = "{node_id(i)}"\n'
            f'device_id = "{device}"\nmetric = "{metric}"\n'
        )
    return out


def server_toml(server: OpcServer, groups: str, name: str = "plant", **extra: Any) -> str:
    settings = {
        "name": name,
        "url": server.url,
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 2.0,
        "timeout_s": 2.0,
    } | extra
    return (
        "\n[[opcua.servers]]\n"
        + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
        + groups
    )


def _toml(value: Any) -> str:
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def offline_uplink() -> str:
    """An uplink nobody listens on: everything stays in the spool, to be counted."""
    return uplink_toml(free_port_block(1), "t/{site_id}/{device_id}")


def spool_rows(agent: Agent) -> list[Row]:
    db = sqlite3.connect(agent.spool)
    try:
        return [
            (r[0], r[1], int(r[2]), float(r[3]))
            for r in db.execute("SELECT device_id, metric, time_us, value FROM readings")
        ]
    finally:
        db.close()


def collected(agent: Agent, name: str = "plant") -> float:
    return agent.metrics().get(f'edge_readings_collected_total{{source="opcua:{name}"}}', 0.0)


@pytest.fixture
def servers() -> Iterator[list[OpcServer]]:
    started: list[OpcServer] = []
    yield started
    for server in started:
        server.close()


def change_round(server: OpcServer, indexes: range, r: int) -> list[Row]:
    """Changes every node once (a value never seen before); returns the rows to expect."""
    server.change({i: 1000.0 * r + i + 0.5 for i in indexes})
    return [expected_row(server, i) for i in indexes]


def test_1000_changing_nodes_are_stored_exactly_as_the_server_changed_them(
    stack: Stack, plain_db: str, tmp_path: Path, servers: list[OpcServer]
) -> None:
    nodes = range(1000)
    server = OpcServer(len(nodes)).start()
    servers.append(server)
    scenario = Scenario(stack, plain_db, tmp_path)
    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + server_toml(server, nodes_toml(nodes, queue_size=20)),
    )
    expected = [expected_row(server, i) for i in nodes]  # the initial values
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("run")
            wait_until(lambda: collected(agent) == len(nodes), 60, "the initial values")
            for r in range(1, 6):
                expected += change_round(server, nodes, r)
            assert server.changes == 5 * len(nodes)
            wait_until(lambda: collected(agent) >= len(expected), 60, "every change spooled")
            wait_until(lambda: count_rows(plain_db) >= len(expected), 60, "every change stored")
            wait_until(lambda: agent.status()["spool"]["readings"] == 0, 30, "an empty spool")
            metrics = agent.metrics()
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
    # Counted on the server's side: 1000 initial values + 5000 changes, each
    # spooled once and stored once, with its value and source timestamp.
    assert metrics['edge_readings_collected_total{source="opcua:plant"}'] == len(expected) == 6000
    keys: set[Key] = {(d, m, t) for d, m, t, _ in expected}
    assert len(keys) == len(expected)
    assert_exactly_once(plain_db, keys)
    stored = {
        (r["device_id"], r["metric"], r["t"], r["value"])
        for r in fetch_rows(
            plain_db,
            "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::bigint AS t, value "
            "FROM telemetry",
        )
    }
    assert stored == set(expected)
    assert metrics['edge_opcua_monitored_items{server="plant"}'] == len(nodes)
    assert "Traceback" not in agent.log()


def test_a_server_restart_is_resubscribed_with_nothing_twice_and_the_gap_counted(
    tmp_path: Path, servers: list[OpcServer]
) -> None:
    nodes = range(200)
    server = OpcServer(len(nodes)).start()
    servers.append(server)
    agent = Agent(tmp_path, offline_uplink() + server_toml(server, nodes_toml(nodes)))
    expected = [expected_row(server, i) for i in nodes]
    try:
        agent.start("run")
        wait_until(lambda: collected(agent) == len(expected), 60, "the initial values")
        for r in range(1, 4):
            expected += change_round(server, nodes, r)
        wait_until(lambda: collected(agent) == len(expected), 60, "the changes before the stop")
        server.stop()
        wait_until(
            lambda: agent.metrics().get('edge_opcua_connected{server="plant"}') == 0,
            30,
            "the agent to see the server gone",
        )
        stopped = time.monotonic()
        wait_until(
            lambda: agent.health() is not None and time.monotonic() - stopped >= 10,
            20,
            "10 s of outage, the agent answering meanwhile",
            every=0.5,
        )
        health = agent.status()
        server.start()  # same port, same values and timestamps, as a PLC's restart
        wait_until(
            lambda: agent.metrics().get('edge_opcua_reconnects_total{server="plant"}', 0) >= 1,
            60,
            "the resubscription",
        )
        for r in range(4, 7):
            expected += change_round(server, nodes, r)
        wait_until(lambda: collected(agent) >= len(expected), 60, "the changes after the restart")
        metrics = agent.metrics()
        assert agent.stop() == 0
    finally:
        agent.kill()
    rows = spool_rows(agent)
    assert len(rows) == len(expected) == 7 * len(nodes)  # nothing spooled twice
    assert sorted(rows) == sorted(expected)
    # The initial values after the restart were the last ones stored: skipped as repeated.
    assert metrics['edge_opcua_skipped_values_total{reason="repeated",server="plant"}'] == len(
        nodes
    )
    assert metrics['edge_opcua_reconnects_total{server="plant"}'] == 1
    assert metrics['edge_opcua_gap_seconds_total{server="plant"}'] >= 10
    assert metrics['edge_opcua_monitored_items{server="plant"}'] == len(nodes)
    assert "opcua:plant" in " ".join(health["problems"])
    log = agent.log()
    assert "server plant: session back after a gap of" in log
    assert "Traceback" not in log


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "pki"
    folder.mkdir()
    return {
        "server": make_cert(folder, "server", "urn:edge-agent-tests:server", server=True),
        "impostor": make_cert(folder, "impostor", "urn:edge-agent-tests:server", server=True),
        "agent": make_cert(folder, "agent", "urn:edge-agent-tests:agent", server=False),
        "stranger": make_cert(folder, "stranger", "urn:edge-agent-tests:stranger", server=False),
    }


def test_sign_and_encrypt_works_and_untrusted_certificates_are_refused(
    tmp_path: Path, servers: list[OpcServer], pki: dict[str, tuple[Path, Path]]
) -> None:
    nodes = range(20)
    server = OpcServer(
        len(nodes),
        security=pki["server"],
        trusted_clients=[pki["agent"][0]],
        users={"edge": "s3cret"},
    ).start()
    servers.append(server)

    def secure(
        name: str, client: str, trusted: Path, password: str = "s3cret", **extra: Any
    ) -> str:
        return server_toml(
            server,
            nodes_toml(nodes),
            name=name,
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            certificate=pki[client][0],
            private_key=pki[client][1],
            server_certificate=trusted,
            username="edge",
            password=password,
            timeout_s=5.0,  # RSA handshakes with five sessions at once on a busy machine
            **extra,
        )

    tofu = tmp_path / "pki" / "first-seen.der"
    agent = Agent(
        tmp_path,
        offline_uplink()
        + secure("good", "agent", pki["server"][0])
        + secure("tofu", "agent", tofu, trust_on_first_use=True)
        + secure("impostor", "agent", pki["impostor"][0])
        + secure("stranger", "stranger", pki["server"][0])
        + secure("badlogin", "agent", pki["server"][0], password="wrong"),
    )
    try:
        agent.start("run")
        wait_until(lambda: collected(agent, "good") == len(nodes), 60, "the initial values")
        wait_until(lambda: collected(agent, "tofu") == len(nodes), 60, "them on first use")
        expected = change_round(server, nodes, 1)
        wait_until(lambda: collected(agent, "good") == 2 * len(nodes), 60, "a change")

        def refused(name: str) -> list[str]:
            return [x for x in agent.log().splitlines() if f"server {name} (" in x and "refus" in x]

        wait_until(
            lambda: all(refused(name) for name in ("impostor", "stranger", "badlogin")),
            60,
            "the refusals in the log",
        )
        health = agent.status()
        metrics = agent.metrics()
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert tofu.read_bytes() == pki["server"][0].read_bytes()
    for name in ("impostor", "stranger", "badlogin"):
        assert metrics.get(f'edge_readings_collected_total{{source="opcua:{name}"}}', 0) == 0
        assert health["devices"][f"opcua:{name}"]["up"] is False
    assert health["devices"]["opcua:good"]["up"] is True
    rows = spool_rows(agent)
    for row in expected:
        assert rows.count(row) == 2  # "good" and "tofu" read the same server
    log = agent.log()
    # One clear line each (logged again only if the reason changes in between,
    # e.g. a timeout on a busy machine).
    line = refused("impostor")[0]
    assert "is not the trusted one in" in line
    assert "refusing to connect" in line
    line = refused("stranger")[0]
    assert "refused the agent's certificate" in line
    assert "stranger.der" in line
    line = refused("badlogin")[0]
    assert "refused the login of user 'edge'" in line
    assert "trusting its certificate on first use" in log
    assert server.rejected_certificates >= 1
    assert "Traceback" not in log


def test_1000_polled_nodes_from_a_server_that_reads_50_at_most(
    tmp_path: Path, servers: list[OpcServer]
) -> None:
    polled, subscribed = range(1000), range(1000, 1300)
    server = OpcServer(
        len(polled) + len(subscribed), max_nodes_per_read=50, max_monitored_items_per_call=100
    ).start()
    servers.append(server)
    agent = Agent(
        tmp_path,
        offline_uplink()
        + server_toml(
            server,
            nodes_toml(polled, mode="poll", interval_s=0.5) + nodes_toml(subscribed),
        ),
    )
    everything = range(len(polled) + len(subscribed))
    expected = [expected_row(server, i) for i in everything]
    try:
        agent.start("run")
        wait_until(lambda: collected(agent) == len(expected), 60, "the initial values")
        for r in range(1, 4):
            expected += change_round(server, everything, r)
            n = len(expected)
            wait_until(lambda n=n: collected(agent) >= n, 60, f"round {r}")  # type: ignore[misc]
        metrics = agent.metrics()
        assert agent.stop() == 0
    finally:
        agent.kill()
    rows = spool_rows(agent)
    assert len(rows) == len(expected) == 4 * 1300
    assert sorted(rows) == sorted(expected)
    # Every read fitted the server's limit; none was refused.
    assert server.largest_read <= 50
    assert server.refused_reads == 0
    reads = metrics['edge_opcua_requests_total{server="plant",service="read"}']
    polls = metrics['edge_poll_jitter_seconds_count{collector="opcua"}']
    assert reads >= 20 * polls > 0  # 1000 nodes in chunks of 50
    assert server.largest_monitor_call == 100
    assert server.monitor_calls == 3  # 300 subscribed nodes in chunks of 100
    assert "Traceback" not in agent.log()


def test_a_server_that_takes_fewer_nodes_than_it_says_gets_smaller_reads(
    tmp_path: Path, servers: list[OpcServer]
) -> None:
    nodes = range(1000)
    server = OpcServer(len(nodes), max_nodes_per_read=300, claimed_nodes_per_read=0).start()
    servers.append(server)
    agent = Agent(
        tmp_path,
        offline_uplink() + server_toml(server, nodes_toml(nodes, mode="poll", interval_s=0.5)),
    )
    expected = [expected_row(server, i) for i in nodes]
    try:
        agent.start("run")
        wait_until(lambda: collected(agent) == len(nodes), 60, "every node read")
        expected += change_round(server, nodes, 1)
        wait_until(lambda: collected(agent) == len(expected), 60, "the change")
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert sorted(spool_rows(agent)) == sorted(expected)
    assert server.refused_reads == 2  # 1000, then 500; 250 fit
    assert server.largest_read == 250
    assert "1000 nodes in one read request are too many for it; sending 500 at a time" in (
        agent.log()
    )


def test_a_browse_path_and_an_absolute_deadband(tmp_path: Path, servers: list[OpcServer]) -> None:
    server = OpcServer(2).start()
    servers.append(server)
    groups = (
        '[[opcua.servers.groups]]\ndevice_id = "line-0"\npublishing_interval_s = 0.1\n'
        'deadband = "absolute"\ndeadband_value = 1.0\n'
        '[[opcua.servers.groups.nodes]]\npath = "2:Plant/2:v0000"\nmetric = "v0000"\n'
        + nodes_toml(range(1, 2), publishing_interval_s=0.1)
    )
    agent = Agent(tmp_path, offline_uplink() + server_toml(server, groups))
    expected = [expected_row(server, 0), expected_row(server, 1)]
    try:
        agent.start("run")
        wait_until(lambda: collected(agent) == 2, 60, "the initial values")
        for value in (
            0.5,
            3.0,
            3.75,
            1.0,
        ):  # changes of 0.5, 2.5, 0.75, 2.75 from the last reported
            server.change({0: value, 1: value})
            expected.append(expected_row(server, 1))
            if value in (3.0, 1.0):  # beyond the deadband of 1.0 (from 0.0, then from 3.0)
                expected.append(expected_row(server, 0))
        wait_until(lambda: collected(agent) == len(expected), 60, "the reported changes")
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert sorted(spool_rows(agent)) == sorted(expected)
    assert server.changes == 8


def test_bad_statuses_strings_arrays_and_booleans(tmp_path: Path, servers: list[OpcServer]) -> None:
    server = OpcServer(6, kinds={2: ua.VariantType.String, 4: ua.VariantType.Boolean}).start()
    servers.append(server)
    agent = Agent(
        tmp_path, offline_uplink() + server_toml(server, nodes_toml(range(6)), max_array_elements=3)
    )
    try:
        agent.start("run")
        # The initial string is text: counted and skipped.
        wait_until(lambda: collected(agent) == 5, 60, "the initial values")
        server.change({0: 1.5, 1: 2.5}, status=ua.StatusCodes.BadSensorFailure)
        server.change({2: "running"}, variant=ua.VariantType.String)
        server.change({3: [1.0, 2.0, 3.0, 4.0, 5.0]})
        server.change({4: True}, variant=ua.VariantType.Boolean)
        server.change({5: 7.25})
        t = {i: us(server.values[i].SourceTimestamp) for i in range(6)}  # type: ignore[arg-type]
        wait_until(lambda: collected(agent) == 5 + 3 + 1 + 1, 60, "the good values")
        wait_until(
            lambda: (
                agent.metrics().get(
                    'edge_opcua_bad_values_total{server="plant",status="BadSensorFailure"}'
                )
                == 2
            ),
            30,
            "the Bad values counted",
        )
        metrics = agent.metrics()
        assert agent.stop() == 0
    finally:
        agent.kill()
    rows = set(spool_rows(agent))
    assert {r for r in rows if r[2] in t.values()} == {
        ("line-0", "v0003.0", t[3], 1.0),
        ("line-0", "v0003.1", t[3], 2.0),
        ("line-0", "v0003.2", t[3], 3.0),
        ("line-0", "v0004", t[4], 1.0),
        ("line-0", "v0005", t[5], 7.25),
    }
    skipped = 'edge_opcua_skipped_values_total{{reason="{}",server="plant"}}'
    assert metrics[skipped.format("text")] == 2
    assert metrics[skipped.format("array_bound")] == 2
