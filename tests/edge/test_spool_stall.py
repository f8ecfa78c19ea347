"""A disk that stalls does not stall the polls.

A spool commit waits for the disk (fsync), and a disk now and then stalls for
a quarter of a second or more. Here the stall is made on purpose: the test
takes SQLite's write lock on the agent's spool and holds it for 2 s, so the
agent's next commit waits exactly as it would on a stalled disk. A PLC polled
at 10 Hz goes on being polled meanwhile (counted on the PLC's side), the
commit that waited is seen in edge_modbus_commit_seconds, and once the lock
is gone every poll the PLC answered is in the spool, once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.harness import Agent, uplink_toml
from tests.edge.plc import Plc
from tests.integration.harness import free_port_block, wait_until

STALL_S = 2.0
POLL_S = 0.1
REGISTERS = (
    '\n[[modbus.devices.registers]]\nmetric = "level"\naddress = 0\n'
    '\n[[modbus.devices.registers]]\nmetric = "flow"\naddress = 0\nfunction = "input"\n'
)


@pytest.fixture
def plc() -> Iterator[Plc]:
    server = Plc().start()
    server.set({0: [7]}, {0: [11]}, {})
    try:
        yield server
    finally:
        server.stop()


def commits_over(agent: Agent, seconds: str) -> float:
    m = agent.metrics()
    count = m.get("edge_modbus_commit_seconds_count", 0.0)
    return count - m.get(f'edge_modbus_commit_seconds_bucket{{le="{seconds}"}}', 0.0)


def test_polls_go_on_while_a_spool_commit_waits_for_the_disk(tmp_path: Path, plc: Plc) -> None:
    down = free_port_block(1)  # no broker: everything stays in the spool, to be counted
    agent = Agent(
        tmp_path,
        uplink_toml(down, "t/{site_id}/{device_id}")
        + "\n[modbus]\ncommit_interval_s = 0.0\n"
        + f'\n[[modbus.devices]]\ndevice_id = "plc-1"\nhost = "127.0.0.1"\nport = {plc.port}\n'
        + f"poll_interval_s = {POLL_S}\ntimeout_s = 0.5\n"
        + REGISTERS,
    )
    try:
        agent.start("run")
        wait_until(lambda: agent.spooled() >= 20, 30, "the first polls in the spool")
        assert commits_over(agent, "1.0") == 0

        lock = sqlite3.connect(agent.spool, isolation_level=None, timeout=10)
        lock.execute("BEGIN IMMEDIATE")  # the write lock: the agent's next commit waits
        try:
            before = plc.input_reads_answered
            time.sleep(STALL_S)  # the stall itself: what the agent does meanwhile is counted
            during = plc.input_reads_answered - before
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        # About 20 polls were due; a blocked event loop would have made none.
        assert during >= STALL_S / POLL_S / 2, f"{during} polls during a {STALL_S} s stall"
        wait_until(lambda: commits_over(agent, "1.0") >= 1, 30, "the commit that waited, counted")
        assert agent.stop() == 0
    finally:
        agent.kill()

    answered = plc.input_reads_answered
    db = sqlite3.connect(agent.spool)
    try:
        rows = db.execute("SELECT metric, time_us, value FROM readings").fetchall()
    finally:
        db.close()
    by_metric = {m: sorted(t for mm, t, _ in rows if mm == m) for m in ("level", "flow")}
    assert len(by_metric["flow"]) == answered  # every poll the PLC answered, once
    assert by_metric["level"] == by_metric["flow"]  # each with both readings
    assert len(set(by_metric["flow"])) == answered
    assert {v for m, _, v in rows if m == "level"} == {7.0}
    assert {v for m, _, v in rows if m == "flow"} == {11.0}
    assert "Traceback" not in agent.log()
