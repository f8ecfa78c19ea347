"""Notifications from the outbox: the webhook retried with doubling backoff,
given up (and counted) after its attempts, every transition counted by
severity and transition, each sent once. A scripted HTTP peer plays the
webhook (a real one cannot be made to fail on cue)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import orjson
from prometheus_client import CollectorRegistry

from bridge.alarms import store
from bridge.alarms.evaluate import US, Series, Transition
from bridge.alarms.notify import Notifier
from bridge.alarms.rules import parse_rule
from bridge.config import AlarmSettings

RULE = {
    "name": "hot",
    "kind": "threshold",
    "severity": "major",
    "direction": "above",
    "threshold": 1.0,
}


class Webhook:
    """Answers the first ``failures`` POSTs with 503, then 200; keeps what came."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[float, dict[str, object]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        body = await reader.readexactly(length)
        self.calls.append((time.monotonic(), orjson.loads(body)))
        status = b"503 Service Unavailable" if len(self.calls) <= self.failures else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def _outbox(conn: asyncpg.Connection, transitions: list[str]) -> int:
    rule_id = await conn.fetchval(
        "INSERT INTO alarm_rules (name, spec) VALUES ('hot', '{}') RETURNING id"
    )
    rules = {rule_id: parse_rule(RULE)}
    for i, kind in enumerate(transitions):
        t = Transition(rule_id, "pump-1", "temp", "s1", kind, (1_800_000_000 + i) * US, 5.0, 5.0)  # type: ignore[arg-type]
        await store.commit(
            conn,
            stream="t",
            last_id=f"{i}-1",
            dirty=[((rule_id, "pump-1", "temp"), Series())],
            transitions=[t],
            rules=rules,
        )
    return int(rule_id)


async def _run(plain_db: str, failures: int, attempts: int) -> tuple[Webhook, Notifier, list[bool]]:
    hook = Webhook(failures)
    server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await asyncpg.create_pool(plain_db, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await _outbox(conn, ["raised", "cleared"])
        settings = AlarmSettings(
            webhook_url=f"http://127.0.0.1:{port}/hook", webhook_attempts=attempts
        )  # type: ignore[call-arg]
        notifier = Notifier(settings, None, CollectorRegistry())
        task = asyncio.create_task(notifier.run(pool))
        deadline = time.monotonic() + 20
        async with pool.acquire() as conn:
            while await conn.fetchval("SELECT count(*) FROM alarm_events WHERE NOT sent"):
                assert time.monotonic() < deadline, "events not sent"
                await asyncio.sleep(0.05)
            sent = [
                r["sent"] for r in await conn.fetch("SELECT sent FROM alarm_events ORDER BY id")
            ]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return hook, notifier, sent
    finally:
        await pool.close()
        server.close()


def counter(notifier: Notifier, severity: str, transition: str) -> float | None:
    return notifier.registry.get_sample_value(
        "bridge_alarm_transitions_total", {"severity": severity, "transition": transition}
    )


def failures(notifier: Notifier) -> float | None:
    return notifier.registry.get_sample_value("bridge_alarm_webhook_failures_total")


def test_webhook_retries_with_doubling_backoff(plain_db: str) -> None:
    hook, notifier, sent = asyncio.run(_run(plain_db, failures=2, attempts=5))
    assert sent == [True, True]
    bodies = [b for _, b in hook.calls]
    assert [b["transition"] for b in bodies] == ["raised", "raised", "raised", "cleared"]
    times = [t for t, _ in hook.calls]
    assert times[1] - times[0] >= 0.5  # first backoff
    assert times[2] - times[1] >= 1.0  # doubled
    assert bodies[0]["severity"] == "major"
    assert bodies[0]["device_id"] == "pump-1"
    assert counter(notifier, "major", "raised") == 1
    assert counter(notifier, "major", "cleared") == 1
    assert failures(notifier) == 0


def test_a_dead_webhook_is_given_up_and_counted(plain_db: str) -> None:
    hook, notifier, sent = asyncio.run(_run(plain_db, failures=100, attempts=2))
    assert sent == [True, True]  # MQTT (here: none) is not held up for ever
    assert len(hook.calls) == 4  # two attempts each
    assert failures(notifier) == 2
