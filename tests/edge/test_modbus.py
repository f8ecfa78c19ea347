"""Modbus end to end: a real pymodbus server simulates a PLC whose registers
change; the agent polls it and publishes to real Mosquitto; the real bridge
writes the database; the database holds exactly the values the PLC served,
typed and scaled, in every word and byte order. And a PLC that refuses
connections, or one that never answers, is marked, counted and retried
without holding up the good one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Stack
from tests.edge.harness import Agent, uplink_toml
from tests.edge.plc import Plc, SilentPlc, words
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    count_rows,
    free_port_block,
    running,
    wait_until,
)

STEPS = 4
DEVICE = "plc-1"

# metric -> (its register map entry, as TOML; step -> (holding, input, coil) values to serve)
Case = tuple[str, Any]


CASES: dict[str, Case] = {
    "int16": (
        'address = 0, type = "int16"',
        lambda s: ({0: words("h", -1234 - s)}, {}, {}),
    ),
    "int32_abcd": (
        'address = 2, type = "int32"',
        lambda s: ({2: words("i", -123_456_789 - s)}, {}, {}),
    ),
    "int32_cdab": (
        'address = 4, type = "int32", word_order = "little"',
        lambda s: ({4: words("i", 987_654_321 + s, "little")}, {}, {}),
    ),
    "uint32_badc": (
        'address = 6, type = "uint32", byte_order = "little"',
        lambda s: ({6: words("I", 3_000_000_000 + s, "big", "little")}, {}, {}),
    ),
    "uint32_dcba": (
        'address = 8, type = "uint32", word_order = "little", byte_order = "little"',
        lambda s: ({8: words("I", 4_000_000_007 - s, "little", "little")}, {}, {}),
    ),
    "float32_abcd": (
        'address = 10, type = "float32"',
        lambda s: ({10: words("f", 1234.5 + s * 0.25)}, {}, {}),
    ),
    "float32_cdab": (
        'address = 12, type = "float32", word_order = "little"',
        lambda s: ({12: words("f", -0.15625 * (s + 1), "little")}, {}, {}),
    ),
    "float64_abcd": (
        'address = 14, type = "float64"',
        lambda s: ({14: words("d", 123_456.789 + s)}, {}, {}),
    ),
    "float64_dcba": (
        'address = 18, type = "float64", word_order = "little", byte_order = "little"',
        lambda s: ({18: words("d", -9.87654321e-5 * (s + 1), "little", "little")}, {}, {}),
    ),
    "uint16_scaled": (
        'address = 30, type = "uint16", scale = 0.1, offset = -10.0',
        lambda s: ({30: [60_000 + s]}, {}, {}),
    ),
    "input_int32_scaled": (
        'address = 0, function = "input", type = "int32", scale = 0.001',
        lambda s: ({}, {0: words("i", -2_500_000 + 7 * s)}, {}),
    ),
    "coil_0": (
        'address = 0, function = "coil", type = "bool"',
        lambda s: ({}, {}, {0: s % 2 == 0}),
    ),
    "coil_5": (
        'address = 5, function = "coil", type = "bool"',
        lambda s: ({}, {}, {5: s % 2 == 1}),
    ),
}


def expected_value(metric: str, step: int) -> float:
    """What the database must hold, computed from the raw values the test served."""
    raw: dict[str, float] = {
        "int16": -1234 - step,
        "int32_abcd": -123_456_789 - step,
        "int32_cdab": 987_654_321 + step,
        "uint32_badc": 3_000_000_000 + step,
        "uint32_dcba": 4_000_000_007 - step,
        "float32_abcd": 1234.5 + step * 0.25,
        "float32_cdab": -0.15625 * (step + 1),
        "float64_abcd": 123_456.789 + step,
        "float64_dcba": -9.87654321e-5 * (step + 1),
        "uint16_scaled": (60_000 + step) * 0.1 - 10.0,
        "input_int32_scaled": (-2_500_000 + 7 * step) * 0.001,
        "coil_0": 1.0 if step % 2 == 0 else 0.0,
        "coil_5": 1.0 if step % 2 == 1 else 0.0,
    }
    return float(raw[metric])


def register_map() -> str:
    return "".join(
        f'\n[[modbus.devices.registers]]\nmetric = "{metric}"\n'
        + "\n".join(part.strip() for part in toml.split(","))
        + "\n"
        for metric, (toml, _) in CASES.items()
    )


def serve(plc: Plc, step: int) -> None:
    holding: dict[int, list[int]] = {}
    inputs: dict[int, list[int]] = {}
    coils: dict[int, bool] = {}
    for _, make in CASES.values():
        h, i, c = make(step)
        holding |= h
        inputs |= i
        coils |= c
    plc.set(holding, inputs, coils)


def values_by_metric(db_url: str) -> dict[str, set[float]]:
    async def q() -> dict[str, set[float]]:
        conn = await asyncpg.connect(db_url)
        try:
            rows = await conn.fetch("SELECT DISTINCT metric, value FROM telemetry")
        finally:
            await conn.close()
        out: dict[str, set[float]] = {}
        for r in rows:
            out.setdefault(r["metric"], set()).add(r["value"])
        return out

    return asyncio.run(q())


def polls_stored(db_url: str) -> tuple[int, int]:
    """(distinct poll times, of those the ones holding every metric)."""
    sql = (
        "SELECT count(*), count(*) FILTER (WHERE n = $1) FROM "
        "(SELECT time, count(*) AS n FROM telemetry WHERE device_id = 'plc-1' GROUP BY time) t"
    )

    async def q() -> tuple[int, int]:
        conn = await asyncpg.connect(db_url)
        try:
            row = await conn.fetchrow(sql, len(CASES))
        finally:
            await conn.close()
        assert row is not None
        return int(row[0]), int(row[1])

    return asyncio.run(q())


@pytest.fixture
def plc() -> Iterator[Plc]:
    server = Plc().start()
    serve(server, 0)
    try:
        yield server
    finally:
        server.stop()


def device_toml(device_id: str, port: int, poll: float = 0.2, timeout: float = 0.5) -> str:
    return (
        f'\n[[modbus.devices]]\ndevice_id = "{device_id}"\nhost = "127.0.0.1"\nport = {port}\n'
        f"unit = 1\npoll_interval_s = {poll}\ntimeout_s = {timeout}\nbackoff_max_s = 2.0\n"
        + register_map()
    )


def test_the_database_holds_exactly_what_the_plc_served_in_every_word_order(
    stack: Stack, plain_db: str, tmp_path: Path, plc: Plc
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + device_toml(DEVICE, plc.port),
    )
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("run")
            for step in range(STEPS):
                serve(plc, step)
                wait_until(
                    lambda step=step: all(  # type: ignore[misc]
                        expected_value(m, step) in values_by_metric(plain_db).get(m, set())
                        for m in CASES
                    ),
                    30,
                    f"step {step}'s values in the database",
                )
            assert agent.stop() == 0  # finishes the poll under way, forwards what is spooled
            assert agent.spooled() == 0
            answered = plc.input_reads_answered  # the last request of every poll
            wait_until(lambda: polls_stored(plain_db)[0] >= answered, 30, "every poll stored")
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()

    stored = values_by_metric(plain_db)
    for metric in CASES:
        assert stored[metric] == {expected_value(metric, s) for s in range(STEPS)}, metric
    polls, complete = polls_stored(plain_db)
    assert polls == answered  # every poll the PLC answered, once
    assert complete == polls  # each with every metric
    assert count_rows(plain_db) == polls * len(CASES)
    assert "Traceback" not in agent.log()


def test_a_dead_and_a_silent_plc_are_marked_counted_and_never_stall_the_others(
    stack: Stack, plain_db: str, tmp_path: Path, plc: Plc
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    silent = SilentPlc()
    dead_port = free_port_block(1)  # nothing listens there: connection refused
    agent = Agent(
        tmp_path,
        uplink_toml(stack.mqtt_port, scenario.topic("{site_id}", "{device_id}"))
        + device_toml("plc-dead", dead_port)
        + device_toml("plc-silent", silent.port, timeout=1.0)
        + device_toml(DEVICE, plc.port, poll=0.1),
    )
    try:
        with running(BridgeProcess(scenario)) as bridge:
            bridge.wait_ready()
            agent.start("run")

            def errors(device: str) -> float:
                return agent.metrics().get(f'edge_device_errors_total{{device="{device}"}}', 0)

            wait_until(lambda: errors("plc-silent") >= 3, 30, "the silent PLC's third failure")
            wait_until(lambda: errors("plc-dead") >= 3, 30, "the dead PLC's third failure")
            # Meanwhile the good PLC kept its 10 polls a second: a timeout of 1 s
            # per request on the silent one never held it up.
            polls, complete = polls_stored(plain_db)
            health = agent.status()
            assert agent.stop() == 0
            wait_until(lambda: bridge.metrics()["bridge_inflight_messages"] == 0, 10, "acks")
    finally:
        agent.kill()
        silent.stop()

    devices = health["devices"]
    assert devices[DEVICE]["up"] is True
    assert devices[DEVICE]["errors"] == 0
    for name in ("plc-dead", "plc-silent"):
        assert devices[name]["up"] is False
        assert devices[name]["errors"] >= 3
        assert devices[name]["last_error"]
    assert "plc-dead" in " ".join(health["problems"])
    # The silent PLC's 3 failures took >= 3 s (1 s timeout, then backoff):
    # at 10 polls/s the good one must have many more than 20 complete polls.
    assert polls >= 20
    assert complete == polls
    log = agent.log()
    assert "device plc-dead (127.0.0.1:" in log
    assert "does not answer" in log
    assert "Traceback" not in log
