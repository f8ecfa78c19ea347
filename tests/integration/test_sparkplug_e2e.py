"""Sparkplug B end to end: an edge node (payloads from the independent encoder,
tests/sparkplug/wire.py) publishes through the real Mosquitto to a bridge of
2 workers; what is stored, requested and marked is counted exactly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    count_rows,
    fetch_rows,
    running,
    wait_until,
)
from tests.sparkplug import wire

SPARKPLUG = """
[sparkplug]
enabled = true
reorder_timeout_s = 0.5
rebirth_cooldown_s = 3
standby_poll_s = 0.2
"""

# (name, alias, datatype, birth value, data value): every kind of number
METRICS = [
    ("Int8", 1, wire.INT8, -5, -128),
    ("Int16", 2, wire.INT16, -300, 32767),
    ("Int32", 3, wire.INT32, -12, -2_000_000_000),
    ("Int64", 4, wire.INT64, -(2**40), -(2**52)),
    ("UInt8", 5, wire.UINT8, 200, 255),
    ("UInt16", 6, wire.UINT16, 60000, 65535),
    ("UInt32", 7, wire.UINT32, 4_000_000_000, 4_294_967_295),
    ("UInt64", 8, wire.UINT64, 2**50, 2**53),
    ("Float", 9, wire.FLOAT, 1.5, -0.25),
    ("Double", 10, wire.DOUBLE, 2.25, 1e300),
    ("Boolean", 11, wire.BOOLEAN, True, False),
]
TEXT = ("Mode", 12, wire.STRING, "auto", "manual: ünïcode")


def stored(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


class EdgeNode:
    """A Sparkplug edge node on its own MQTT connection, with its NDEATH will,
    that also records the NCMDs it is sent."""

    def __init__(self, stack: Stack, group: str, node: str, bd_seq: int = 1) -> None:
        self.group, self.node, self.bd_seq, self.seq = group, node, bd_seq, 0
        self.commands: list[bytes] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{group}-{node}")
        self.client.will_set(self.topic("NDEATH"), wire.payload([self.bd_metric()]), qos=1)
        self.client.on_message = lambda c, u, msg: self.commands.append(msg.payload)
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()
        info = self.client.subscribe(self.topic("NCMD"), qos=0)
        wait_until(lambda: info[0] == mqtt.MQTT_ERR_SUCCESS, 5, "subscribed")

    def bd_metric(self, bd_seq: int | None = None) -> bytes:
        return wire.metric("bdSeq", None, wire.INT64, self.bd_seq if bd_seq is None else bd_seq)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def send(self, kind: str, metrics: list[bytes], device: str | None = None, **kw: Any) -> None:
        seq = kw.pop("seq", self.seq)
        self.seq = (seq + 1) % 256
        data = wire.payload(metrics, timestamp=int(time.time() * 1000), seq=seq)
        self.client.publish(self.topic(kind, device), data, qos=0).wait_for_publish(5)

    def raw(self, kind: str, data: bytes, qos: int = 0) -> None:
        self.client.publish(self.topic(kind), data, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def birth_metrics(rows: list[tuple[str, int, int, object, object]], at: int) -> list[bytes]:
    return [wire.metric(n, a, t, rows_value, timestamp=at) for n, a, t, rows_value, _ in rows]


def data_metrics(rows: list[tuple[str, int, int, object, object]]) -> list[bytes]:
    return [wire.metric(None, a, None, v, value_type=t) for _, a, t, _, v in rows]


def values(db_url: str, device: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in fetch_rows(
        db_url, "SELECT metric, value FROM telemetry WHERE device_id = $1 ORDER BY time", device
    ):
        out.setdefault(r["metric"], []).append(r["value"])
    return out


def texts(db_url: str, device: str) -> list[tuple[str, str]]:
    rows = fetch_rows(
        db_url,
        "SELECT metric, text FROM telemetry_text WHERE device_id = $1 ORDER BY time",
        device,
    )
    return [(r["metric"], r["text"]) for r in rows]


def total(bridge: BridgeProcess, name: str) -> float:
    return sum(bridge.metrics(w).get(name, 0.0) for w in range(bridge.workers))


def rebirths(bridge: BridgeProcess, reason: str, outcome: str) -> float:
    return total(
        bridge,
        f'bridge_sparkplug_rebirth_requests_total{{outcome="{outcome}",reason="{reason}"}}',
    )


def leader(bridge: BridgeProcess) -> int:
    """The worker that holds the Sparkplug role, once exactly one does."""
    holders: list[int] = []

    def one() -> bool:
        holders[:] = [
            w for w in range(bridge.workers) if bridge.metrics(w).get("bridge_sparkplug_role")
        ]
        return len(holders) == 1

    wait_until(one, 30, "one worker holding the Sparkplug role")
    return holders[0]


def lifecycle(db_url: str, device: str) -> str | None:
    rows = fetch_rows(db_url, "SELECT lifecycle FROM devices WHERE device_id = $1", device)
    return rows[0]["lifecycle"] if rows else None


def dead_letters(db_url: str, reason: str) -> int:
    rows = fetch_rows(
        db_url, "SELECT count(*) AS n FROM rejected_messages WHERE reason = $1", reason
    )
    return int(rows[0]["n"])


@pytest.fixture
def sparkplug(scenario: Scenario) -> Scenario:
    scenario.extra = SPARKPLUG
    return scenario


def test_births_data_rebirths_and_deaths_with_two_workers(
    sparkplug: Scenario, stack: Stack
) -> None:
    db = sparkplug.db_url
    node = EdgeNode(stack, sparkplug.tag, "edge1")
    with running(BridgeProcess(sparkplug, workers=2)) as bridge:
        bridge.wait_ready()
        leader(bridge)
        now = int(time.time() * 1000)
        # Births, then data by alias only: every value as published.
        node.send("NBIRTH", [node.bd_metric(), *birth_metrics([*METRICS, TEXT], now)])
        node.send("DBIRTH", birth_metrics(METRICS[:4], now), device="tank")
        wait_until(lambda: len(values(db, "edge1")) == len(METRICS), 20, "node birth stored")
        node.send("NDATA", data_metrics([*METRICS, TEXT]))
        node.send("DDATA", data_metrics(METRICS[:4]), device="tank")
        wait_until(lambda: len(values(db, "edge1:tank").get("Int8", [])) == 2, 20, "device data")
        wait_until(lambda: len(values(db, "edge1").get("Int8", [])) == 2, 20, "node data")
        assert values(db, "edge1") == {name: [stored(b), stored(d)] for name, _, _, b, d in METRICS}
        assert values(db, "edge1:tank") == {
            name: [stored(b), stored(d)] for name, _, _, b, d in METRICS[:4]
        }
        wait_until(lambda: len(texts(db, "edge1")) == 2, 20, "strings")
        assert texts(db, "edge1") == [("Mode", TEXT[3]), ("Mode", TEXT[4])]
        assert node.commands == []
        assert (lifecycle(db, "edge1"), lifecycle(db, "edge1:tank")) == ("online", "online")

        # An unknown alias: dead-lettered, a rebirth requested; a second one
        # within the cooldown is counted as suppressed, not sent.
        node.send("NDATA", [wire.metric(None, 999, None, 1.0, value_type=wire.DOUBLE)])
        wait_until(lambda: len(node.commands) == 1, 10, "rebirth NCMD on an unknown alias")
        node.send("NDATA", [wire.metric(None, 2**60, None, 1.0, value_type=wire.DOUBLE)])
        wait_until(lambda: rebirths(bridge, "unknown_alias", "suppressed") == 1, 10, "suppressed")
        assert rebirths(bridge, "unknown_alias", "requested") == 1
        wait_until(lambda: dead_letters(db, "unknown_alias") == 2, 10, "dead letters")
        time.sleep(0.2)  # no second NCMD may arrive within the cooldown
        assert len(node.commands) == 1
        assert b"Node Control/Rebirth" in node.commands[0]

        # A seq gap not filled within the reorder timeout: a rebirth once the
        # cooldown is over.
        time.sleep(3)  # the cooldown of the first request runs out
        node.send("NDATA", data_metrics(METRICS[:1]), seq=(node.seq + 5) % 256)
        wait_until(lambda: len(node.commands) == 2, 10, "rebirth NCMD on a seq gap")
        assert rebirths(bridge, "seq_gap", "requested") == 1

        # NDEATH with a stale bdSeq: ignored; with the birth's: node and
        # devices offline.
        node.raw("NDEATH", wire.payload([node.bd_metric(0)]), qos=1)
        wait_until(lambda: total(bridge, "bridge_sparkplug_stale_deaths_total") == 1, 10, "stale")
        assert (lifecycle(db, "edge1"), lifecycle(db, "edge1:tank")) == ("online", "online")
        node.raw("NDEATH", wire.payload([node.bd_metric()]), qos=1)
        wait_until(lambda: lifecycle(db, "edge1:tank") == "offline", 10, "device offline")
        assert lifecycle(db, "edge1") == "offline"
        assert bridge.stop() == 0
    node.close()


def test_a_killed_leader_and_a_killed_bridge_decode_the_next_data_without_rebirth(
    sparkplug: Scenario, stack: Stack
) -> None:
    db = sparkplug.db_url
    node = EdgeNode(stack, sparkplug.tag, "edge2")
    now = int(time.time() * 1000)
    with running(BridgeProcess(sparkplug, workers=2)) as bridge:
        bridge.wait_ready()
        first = leader(bridge)
        node.send("NBIRTH", [node.bd_metric(), *birth_metrics(METRICS, now)])
        wait_until(lambda: len(values(db, "edge2")) == len(METRICS), 20, "birth stored")
        wait_until(
            lambda: bool(
                fetch_rows(db, "SELECT 1 FROM sparkplug_births WHERE edge_node_id = 'edge2'")
            ),
            10,
            "birth kept",
        )
        # kill -9 the leader: the other worker takes the role and decodes at once.
        os.kill(bridge.worker_pid(first), signal.SIGKILL)
        wait_until(
            lambda: bridge.metrics(1 - first).get("bridge_sparkplug_role") == 1, 30, "takeover"
        )
        node.send("NDATA", data_metrics(METRICS))
        wait_until(lambda: len(values(db, "edge2").get("Int8", [])) == 2, 20, "data after takeover")
        assert node.commands == []
        # kill -9 of the whole bridge: workers, then the supervisor.
        bridge.wait_ready()
        pids = [bridge.worker_pid(w) for w in range(2)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        bridge.kill()
    with running(BridgeProcess(sparkplug, workers=2)) as again:
        again.wait_ready()
        leader(again)
        node.send("NDATA", data_metrics(METRICS))
        wait_until(lambda: len(values(db, "edge2").get("Int8", [])) == 3, 20, "data after restart")
        assert values(db, "edge2") == {
            name: [stored(b), stored(d), stored(d)] for name, _, _, b, d in METRICS
        }
        assert node.commands == []
        assert rebirths(again, "no_birth", "requested") == 0
        assert again.stop() == 0
    node.close()


def test_the_simulator_feeds_the_bridge_and_answers_a_rebirth(
    sparkplug: Scenario, stack: Stack, tmp_path: Path
) -> None:
    """`edge-agent simulate --sparkplug` (what `make run` starts) against the
    bridge: births, DDATA of every type, strings included; killed and restarted
    bridge-side state is not needed because the simulator answers a rebirth."""
    db = sparkplug.db_url
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[agent]\nsite_id = "{sparkplug.tag}"\n[spool]\npath = "{tmp_path / "spool.db"}"\n'
        f'[uplink]\nhost = "127.0.0.1"\nport = {stack.mqtt_port}\nclient_id = "sim1"\n'
    )
    with running(BridgeProcess(sparkplug, workers=2)) as bridge:
        bridge.wait_ready()
        leader(bridge)
        log = (tmp_path / "sim.log").open("wb")
        sim = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "--config", str(config), "simulate",
             "--sparkplug", "--devices", "3", "--rate", "5"],
            stdout=log, stderr=log,
        )  # fmt: skip
        try:
            for device in ("sim1:pump-1", "sim1:pump-2", "sim1:pump-3"):
                wait_until(
                    lambda d=device: len(values(db, d).get("flow_rate", [])) >= 5,  # type: ignore[misc]
                    30,
                    device,
                )
                assert set(values(db, device)) == {
                    "flow_rate", "pip", "temperature", "starts", "running"
                }  # fmt: skip
                wait_until(
                    lambda d=device: len(texts(db, d)) >= 5,  # type: ignore[misc]
                    10,
                    f"{device} mode",
                )
            assert lifecycle(db, "sim1:pump-1") == "online"
            # A message it did not send breaks seq: the bridge asks for a
            # rebirth, and the simulator's births bring no new dead letter.
            rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{sparkplug.tag}-rogue")
            rogue.connect("127.0.0.1", stack.mqtt_port)
            rogue.loop_start()
            topic = f"spBv1.0/{sparkplug.tag}/DDATA/sim1/pump-1"
            rogue.publish(topic, wire.payload([], seq=200), qos=0).wait_for_publish(5)
            rogue.disconnect()
            rogue.loop_stop()
            wait_until(lambda: rebirths(bridge, "seq_gap", "requested") == 1, 20, "rebirth")
            sim_log = tmp_path / "sim.log"
            wait_until(lambda: "rebirth requested" in sim_log.read_text(), 10, "sim reborn")
            wait_until(
                lambda: count_rows(db, "SELECT count(*) FROM sparkplug_births") == 4,
                10,
                "the node's and its 3 devices' births kept",
            )
            assert dead_letters(db, "no_birth") == 0
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(10)
            log.close()
        wait_until(lambda: lifecycle(db, "sim1:pump-1") == "offline", 10, "NDEATH on exit")
        assert bridge.stop() == 0


def test_primary_host_state_online_will_on_kill_and_offline_on_stop(
    sparkplug: Scenario, stack: Stack
) -> None:
    """spBv1.0/STATE/<host_id>: retained online with T once the role's holder
    is subscribed; its will, offline with the same T, when it is killed; the
    next holder online with its own T; offline on a graceful stop."""
    host_id = f"host-{sparkplug.tag}"
    sparkplug.extra = SPARKPLUG + f'primary_host_id = "{host_id}"\n'
    states: list[dict[str, Any]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{sparkplug.tag}-watch")
    watcher.on_message = lambda c, u, msg: states.append(orjson.loads(msg.payload))
    watcher.connect("127.0.0.1", stack.mqtt_port)
    watcher.loop_start()
    watcher.subscribe(f"spBv1.0/STATE/{host_id}", qos=1)
    try:
        with running(BridgeProcess(sparkplug, workers=2)) as bridge:
            bridge.wait_ready()
            first = leader(bridge)
            wait_until(lambda: len(states) == 1, 10, "STATE online")
            assert states[0]["online"] is True
            born = states[0]["timestamp"]
            victim = bridge.worker_pid(first)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(states) >= 2, 30, "the will")
            assert states[1] == {"online": False, "timestamp": born}
            wait_until(lambda: len(states) >= 3, 30, "the next holder's STATE")
            assert states[2]["online"] is True
            assert states[2]["timestamp"] > born
            wait_until(
                lambda: bridge.ready(first) and bridge.worker_pid(first) != victim,
                30,
                "the killed worker restarted",
            )
            assert bridge.stop() == 0
        wait_until(lambda: len(states) >= 4, 10, "STATE offline on stop")
        assert states[3] == {"online": False, "timestamp": states[2]["timestamp"]}
    finally:
        watcher.disconnect()
        watcher.loop_stop()


def test_hostile_sparkplug_input_is_dead_lettered_and_the_good_metrics_kept(
    sparkplug: Scenario, stack: Stack
) -> None:
    """Through Mosquitto: a truncated payload, wrong types, a huge alias, a
    DataSet that is not numeric, 1,000,000 metrics, a payload over the size
    limit and garbage each leave a dead letter with its reason; the valid
    metrics of the same messages are stored; the bridge keeps going."""
    db = sparkplug.db_url
    # The size limit just under the broker's packet limit, so that a
    # 1,000,000-metric payload (4,000,000 bytes) reaches the metric count check.
    sparkplug.extra = SPARKPLUG + "[limits]\nmax_payload_bytes = 4190000\n"
    node = EdgeNode(stack, sparkplug.tag, "edge3")
    now = int(time.time() * 1000)
    good = [("A", 1, wire.INT32), ("B", 2, wire.DOUBLE), ("C", 3, wire.DOUBLE)]
    table = ("Table", 4, wire.DATASET)
    pump = ("Pump", 5, wire.TEMPLATE)
    with running(BridgeProcess(sparkplug, workers=2)) as bridge:
        bridge.wait_ready()
        leader(bridge)
        node.send(
            "NBIRTH",
            [node.bd_metric()]
            + [wire.metric(n, a, t, null=True) for n, a, t in (*good, table, pump)],
        )
        wait_until(lambda: bool(fetch_rows(db, "SELECT 1 FROM sparkplug_births")), 20, "birth")

        def metric(alias: int, datatype: int, value: object, **kw: Any) -> bytes:
            return wire.metric(None, alias, None, value, value_type=datatype, **kw)

        # cut short inside its third metric: the first two are kept
        whole = wire.payload(
            [metric(1, wire.INT32, -1), metric(2, wire.DOUBLE, 1.25), metric(3, wire.DOUBLE, 9.0)],
            timestamp=now + 1,
        )
        node.raw("NDATA", whole[:-4])
        # a string where an Int32 belongs; an alias no birth has; good B beside them
        node.raw(
            "NDATA",
            wire.payload(
                [
                    metric(1, wire.STRING, "minus one"),
                    metric(2**64 - 1, wire.DOUBLE, 7.0),
                    metric(2, wire.DOUBLE, 2.5),
                ],
                timestamp=now + 2,
            ),
        )
        # a DataSet with a Bytes column; a numeric Template beside it
        dataset = wire.dataset(["x"], [wire.INT32], [[1]]).replace(
            wire.f_varint(3, wire.INT32), wire.f_varint(3, wire.BYTES)
        )
        template = wire.template([wire.metric("speed", None, wire.FLOAT, 1.5)])
        node.raw(
            "NDATA",
            wire.payload(
                [
                    wire.metric(None, 4, None, raw_value=dataset),
                    wire.metric(None, 5, None, raw_value=template),
                ],
                timestamp=now + 3,
            ),
        )
        node.raw("NDATA", wire.f_bytes(2, wire.f_varint(2, 1)) * 1_000_000)
        node.raw("NDATA", wire.payload([metric(3, wire.STRING, "x" * 4_190_001)]))
        node.raw("NDATA", b"\xff" * 64)
        node.raw("NDATA", wire.payload([metric(3, wire.DOUBLE, 3.5)], timestamp=now + 4))

        expected = {
            "truncated_protobuf": 1,
            "wrong_type": 1,
            "unknown_alias": 1,
            "not_numeric": 1,
            "too_many_points": 1,
            "payload_too_large": 1,
            "malformed_protobuf": 1,
        }

        def letters() -> dict[str, int]:
            rows = fetch_rows(
                db, "SELECT reason, count(*) AS n FROM rejected_messages GROUP BY reason"
            )
            return {r["reason"]: int(r["n"]) for r in rows}

        wait_until(lambda: values(db, "edge3").get("C") == [3.5], 60, "the last good message")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: letters() == expected, 20, "dead letters")
        assert letters() == expected
        assert values(db, "edge3") == {
            "A": [-1.0],
            "B": [1.25, 2.5],
            "C": [3.5],
            "Pump.speed": [1.5],
        }
        details = {
            r["reason"]: r["detail"] for r in fetch_rows(db, "SELECT * FROM rejected_messages")
        }
        assert "1000000 metrics" in details["too_many_points"]
        assert "18446744073709551615" in details["unknown_alias"]
        assert "2 metric(s) before it kept" in details["truncated_protobuf"]
        assert bridge.ready(0)
        assert bridge.ready(1)
        assert bridge.stop() == 0
    node.close()


def test_stopped_as_soon_as_ready_every_worker_exits(sparkplug: Scenario) -> None:
    """The holder and the standby, stopped the moment they are ready, exit
    within the grace time, 6 times over (a cancellation swallowed by
    asyncio.wait_for once left the standby waiting for ever: 1 run in 3 hung
    before the role's loops ended on stop)."""
    for _ in range(6):
        with running(BridgeProcess(sparkplug, workers=2)) as bridge:
            bridge.wait_ready()
            assert bridge.stop(timeout=15) == 0, bridge.log()[-2000:]
