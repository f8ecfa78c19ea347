"""Notifications of alarm transitions, sent from the outbox (alarm_events).

Contracts:
  * At least once, in order. Each transition (raised, acknowledged, cleared)
    is a row written in the transaction that made it (bridge.alarms.store);
    the notifier sends unsent rows oldest first and marks them sent after.
    A crash in between sends a row again, never loses one.
  * MQTT: published QoS 1 on ``<alarms.topic_prefix>/<site>/<device>`` (site
    ``_`` when the device has none), the alarm as JSON; returns on PUBACK.
    While there is no broker connection, sending waits and retries.
  * Webhook (``alarms.webhook_url``, optional): POSTed as JSON; a failure
    (no answer, or not 2xx) is retried ``webhook_attempts`` times with
    doubling backoff from 0.5 s, then counted and given up: a dead webhook
    does not hold up MQTT for long.
  * ``bridge_alarm_transitions_total{severity, transition}`` counts each
    transition as it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client import CollectorRegistry, Counter

from bridge.alarms import store
from bridge.config import AlarmSettings
from bridge.errors import NotConnected
from bridge.source.session import Session

log = logging.getLogger("bridge.alarms")
FIRST_BACKOFF_S = 0.5


def topic(prefix: str, body: dict[str, Any]) -> str:
    return f"{prefix}/{body.get('site_id') or '_'}/{body['device_id']}"


class Notifier:
    def __init__(
        self,
        settings: AlarmSettings,
        session: Session | None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.wake = asyncio.Event()
        self.registry = registry or CollectorRegistry()
        registry = self.registry
        self.transitions = Counter(
            "bridge_alarm_transitions",
            "Alarm transitions notified, by severity and transition",
            ["severity", "transition"],
            registry=registry,
        )
        self.webhook_failures = Counter(
            "bridge_alarm_webhook_failures",
            "Transitions the webhook did not take after every attempt",
            registry=registry,
        )

    async def run(self, pool: asyncpg.Pool) -> None:
        """Sends what the outbox holds, woken by ``wake`` or every second."""
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s) as http:
            while True:
                try:
                    async with pool.acquire() as conn:
                        await self._send_pending(conn, http)
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("alarm notifications wait for the database: %s", exc)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 1.0)

    async def _send_pending(self, conn: asyncpg.Connection, http: httpx.AsyncClient) -> None:
        while True:
            events = await store.unsent(conn)
            if not events:
                return
            for event_id, body in events:
                if not await self._publish(body):
                    return  # no broker: the rest waits, in order
                await self._post(http, body)
                await store.mark_sent(conn, [event_id])
                self.transitions.labels(body["severity"], body["transition"]).inc()

    async def _publish(self, body: dict[str, Any]) -> bool:
        if self.session is None:
            return True
        try:
            await self.session.publish(
                topic(self.settings.topic_prefix, body), orjson.dumps(body), qos=1
            )
        except NotConnected as exc:
            log.info("alarm notification waits for the broker: %s", exc)
            return False
        return True

    async def _post(self, http: httpx.AsyncClient, body: dict[str, Any]) -> None:
        url = self.settings.webhook_url
        if not url:
            return
        delay = FIRST_BACKOFF_S
        for attempt in range(1, self.settings.webhook_attempts + 1):
            try:
                answer = await http.post(url, json=body)
                if answer.is_success:
                    return
                why = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
            if attempt < self.settings.webhook_attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.webhook_failures.inc()
        log.warning(
            "webhook %s did not take alarm %s (%s) after %d attempts: %s",
            url,
            body.get("id"),
            body.get("transition"),
            self.settings.webhook_attempts,
            why,
        )
