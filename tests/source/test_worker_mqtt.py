"""The worker's MQTT side against a scripted broker (tests/source/scripted.py)
and the real database and cache: what an abandoned, misbehaving or flooding
connection may and may not do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from bridge.commit import Committer
from bridge.config import Settings
from bridge.pipeline import Worker
from bridge.source.wire import READ_CHUNK
from tests.integration.harness import seed_message
from tests.source.scripted import (
    CONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    SUBSCRIBE,
    ScriptedBroker,
    connack,
    publish,
    suback,
)
from tests.sparkplug import wire

NOW_US = time.time_ns() // 1000 // 1_000_000 * 1_000_000 - 600_000_000


def settings(
    port: int, db: str, redis: str, sections: dict[str, Any] | None = None, **mqtt: Any
) -> Settings:
    """``sections``: more of the settings, as the config file's sections."""
    return Settings.model_validate(
        {
            "database": {"url": db, "pool_size": 1, "maintain_interval_s": 0},
            "redis": {"url": redis, "prefix": "t:", "timeout_s": 1.0},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": "bt",
                "group": "g",
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.2,
                "export_sys": False,  # the scripted broker takes the worker's connection only
                **mqtt,
            },
            "batch": {"max_delay_ms": 20},
            "http": {"port": 0},
            "shutdown": {"grace_s": 5},
            **(sections or {}),
        }
    )


def message(i: int) -> bytes:
    return seed_message("dev", NOW_US + i, {"m": float(i)})


TOPIC = "telemetry/site/dev"
SPARKPLUG_NODE = "spBv1.0/plant"


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def until(predicate: Callable[[], object], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def fetchval(db: str, sql: str) -> Any:
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def fault(worker: Worker, kind: str) -> float | None:
    return worker.metrics.registry.get_sample_value("bridge_mqtt_faults_total", {"kind": kind})


async def test_a_suback_that_never_comes_closes_the_connection_and_nothing_it_delivers_is_acked(
    plain_db: str, redis_url: str
) -> None:
    async with ScriptedBroker() as broker:
        s = settings(broker.port, plain_db, redis_url, request_timeout_s=1.0)
        async with running(Worker(s)):
            first = await broker.next_peer()
            first.send(connack())
            await first.expect(SUBSCRIBE)  # and no SUBACK: the bridge gives up on it
            second = await broker.accept()
            await asyncio.wait_for(first.closed.wait(), 5)  # closed by the bridge
            first.send(publish(TOPIC, message(77), mid=77))  # too late: nobody reads it
            second.send(publish(TOPIC, message(78), mid=78))
            await until(lambda: second.acked() == [78], "PUBACK 78 on the new connection")
            await asyncio.sleep(0.3)  # room for a wrong ack to show
        assert second.acked() == [78]
        assert first.acked() == []
    assert await fetchval(plain_db, "SELECT count(*) FROM telemetry") == 1


async def test_a_slow_pingresp_while_publishes_flow_keeps_the_connection(
    plain_db: str, redis_url: str
) -> None:
    async with ScriptedBroker() as broker:
        s = settings(broker.port, plain_db, redis_url)
        # Keepalive 2 s, below what the settings allow, to keep the test short.
        mqtt = s.mqtt.model_copy(update={"keepalive_s": 2})
        async with running(Worker(s.model_copy(update={"mqtt": mqtt}))):
            peer = await broker.accept()

            async def late_pingresps() -> None:
                while True:
                    await peer.expect(PINGREQ, timeout=60)
                    await asyncio.sleep(5)  # 2.5 keepalives late
                    peer.send(PINGRESP)

            answering = asyncio.create_task(late_pingresps())
            sent = 0
            ends = time.monotonic() + 7  # 3.5 keepalives of PUBLISH traffic
            while time.monotonic() < ends:
                sent += 1
                peer.send(publish(TOPIC, message(sent), mid=sent))
                await asyncio.sleep(0.1)
            await until(lambda: len(peer.acked()) == sent, "every message acked")
            answering.cancel()
            assert not peer.closed.is_set(), "the bridge dropped a busy connection"
            assert broker.peers.empty(), "the bridge reconnected"
    assert await fetchval(plain_db, "SELECT count(*) FROM telemetry") == sent


async def test_a_broker_over_receive_maximum_is_counted_and_held_to_it(
    plain_db: str, redis_url: str
) -> None:
    async with ScriptedBroker() as broker:
        worker = Worker(settings(broker.port, plain_db, redis_url, receive_maximum=20))
        in_flight: list[int] = []
        async with running(worker):
            peer = await broker.accept()
            peer.send(b"".join(publish(TOPIC, message(i), mid=i) for i in range(1, 101)))
            deadline = time.monotonic() + 20
            while len(peer.acked()) < 100 and time.monotonic() < deadline:
                in_flight.append(worker.tracker.in_flight)
                await asyncio.sleep(0.005)
            assert peer.acked() == list(range(1, 101))
            assert (fault(worker, "receive_maximum_exceeded") or 0) >= 1
            assert not peer.closed.is_set()  # held to the limit, not cut off
    # Memory bounded: never more than Receive Maximum messages taken in at once.
    assert max(in_flight) <= 20
    assert await fetchval(plain_db, "SELECT count(*) FROM telemetry") == 100


async def test_a_handler_that_raises_drops_the_connection_and_loses_nothing(
    plain_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ScriptedBroker() as broker:
        worker = Worker(settings(broker.port, plain_db, redis_url))
        add = worker.intake.batcher.add
        calls = 0

        def add_failing_once(*args: Any, **kwargs: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 4:
                raise ZeroDivisionError("a bug downstream")
            add(*args, **kwargs)

        monkeypatch.setattr(worker.intake.batcher, "add", add_failing_once)
        async with running(worker):
            first = await broker.accept()
            first.send(b"".join(publish(TOPIC, message(i), mid=i) for i in range(1, 11)))
            await asyncio.wait_for(first.closed.wait(), 5)  # dropped by the bridge
            first.send(publish(TOPIC, message(501), mid=501))  # nobody may read this
            second = await broker.accept()
            # The broker redelivers every unacked message on the new connection.
            second.send(b"".join(publish(TOPIC, message(i), mid=i, dup=True) for i in range(1, 11)))
            await until(lambda: second.acked() == list(range(1, 11)), "all ten acked")
            assert fault(worker, "callback_error") == 1
        assert first.acked() == []
    stored = await fetchval(plain_db, "SELECT array_agg(value ORDER BY value) FROM telemetry")
    assert stored == [float(i) for i in range(1, 11)]


async def test_the_same_poison_message_delivered_twice_is_one_dead_letter(
    plain_db: str, redis_url: str
) -> None:
    async with ScriptedBroker() as broker:
        worker = Worker(settings(broker.port, plain_db, redis_url))
        async with running(worker):
            first = await broker.accept()
            first.send(publish(TOPIC, b"{not json", mid=5))
            await first.expect(PUBACK)  # committed and acked...
            first.close()  # ...but the broker never got the PUBACK
            second = await broker.accept()
            second.send(publish(TOPIC, b"{not json", mid=5, dup=True))
            second.send(publish(TOPIC, b"{other junk", mid=6))  # a different one
            await until(lambda: second.acked() == [5, 6], "both acked")
    rows = await fetchval(
        plain_db,
        "SELECT array_agg(convert_from(payload, 'UTF8') ORDER BY id) FROM rejected_messages",
    )
    assert rows == ["{not json", "{other junk"]


async def test_a_worker_that_does_not_keep_up_with_its_socket_is_behind(
    plain_db: str, redis_url: str
) -> None:
    """More than a read's worth waiting unread in the socket counts as a
    backlog (the cache then writes less), though little is inside the worker:
    what a worker whose own loop is the bottleneck looks like."""
    async with ScriptedBroker() as broker:
        worker = Worker(settings(broker.port, plain_db, redis_url))
        committer = Committer.__new__(Committer)  # only its flag is read
        committer.backlogged = False
        async with running(worker):
            peer = await broker.accept()
            await until(lambda: worker.session.connected, "subscribed")
            worker.session.pause_reading()  # as a loop busy elsewhere: nothing read
            count = 1000
            peer.send(b"".join(publish(TOPIC, message(i), mid=i) for i in range(1, count + 1)))
            await until(lambda: worker.session.unread > READ_CHUNK, "the messages in the socket")
            assert worker.tracker.in_flight == 0  # nothing inside the worker...
            assert worker._behind(committer)  # ...and still behind
            unread = worker.metrics.registry.get_sample_value("bridge_mqtt_unread_bytes")
            assert unread is not None
            assert unread > READ_CHUNK
            worker.session.resume_reading()
            await until(lambda: len(peer.acked()) == count, "every message acked")
            assert worker.session.unread == 0
            assert not worker._behind(committer)
    assert await fetchval(plain_db, "SELECT count(*) FROM telemetry") == count


async def test_the_sparkplug_roles_unread_socket_makes_the_worker_behind_too(
    plain_db: str, redis_url: str
) -> None:
    """The Sparkplug role's batches share the worker's loop and commit queue,
    so its socket counts as the worker's own; every NDATA is stored once."""
    async with ScriptedBroker() as broker:
        sparkplug = {"sparkplug": {"enabled": True, "standby_poll_s": 0.2}}
        worker = Worker(settings(broker.port, plain_db, redis_url, sparkplug))
        assert worker.sparkplug is not None
        committer = Committer.__new__(Committer)  # only its flag is read
        committer.backlogged = False
        async with running(worker):
            peers = {}
            for _ in range(2):  # the worker's own connection and the role's, in either order
                peer = await broker.next_peer()
                connect = await peer.expect(CONNECT)
                peer.send(connack())
                mid = int.from_bytes((await peer.expect(SUBSCRIBE))[:2], "big")
                peer.send(suback(mid, count=2))
                peers[b"sparkplug" in connect] = peer
            node = peers[True]
            await until(
                lambda: worker.sparkplug is not None and worker.sparkplug.session.connected,
                "the role subscribed",
            )
            t0 = time.time_ns() // 1_000_000 - 600_000
            birth = wire.payload(
                [wire.metric("bdSeq", None, wire.INT64, 1), wire.metric("Temp", 1, wire.INT32, 0)],
                timestamp=t0,
                seq=0,
            )
            node.send(publish(f"{SPARKPLUG_NODE}/NBIRTH/edge1", birth, mid=1))
            await until(lambda: node.acked() == [1], "the birth acked")
            worker.sparkplug.session.pause_reading()  # as a loop busy elsewhere
            count = 3000
            node.send(
                b"".join(
                    publish(
                        f"{SPARKPLUG_NODE}/NDATA/edge1",
                        wire.payload(
                            [wire.metric(None, 1, None, 1000 + i, value_type=wire.INT32)],
                            timestamp=t0 + i,
                            seq=i % 256,
                        ),
                        mid=2 + i,
                    )
                    for i in range(1, count + 1)
                )
            )
            await until(lambda: worker._unread() > READ_CHUNK, "the messages in the socket")
            assert worker.session.unread == 0  # the worker's own socket is empty...
            assert worker._behind(committer)  # ...and it is behind all the same
            worker.sparkplug.session.resume_reading()
            await until(lambda: len(node.acked()) == count + 1, "every message acked")
            assert not worker._behind(committer)
    assert await fetchval(plain_db, "SELECT count(*) FROM telemetry WHERE value >= 1000") == count
