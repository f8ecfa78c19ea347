"""The broker's own counters ($SYS/broker/...): what they are called, how to
read one, and worker 0's exporter that keeps them as Prometheus gauges.

`bridge doctor` (bridge/doctor/services.py) reads the same topics once;
the exporter reads them for as long as the worker runs, on a connection of
its own (the worker's session must see only telemetry: a $SYS message there
would be routed, and dead-lettered).

Mosquitto publishes $SYS every ``sys_interval`` (10 s by default), each value
only when it changed, and hands the retained ones to a new subscriber, but
2.0.11 does not always do that promptly: a gauge may stay absent until the
next tick that changes its value. Every gauge reads 0 until its first value
(``publish/messages/dropped`` comes only once the broker dropped a message);
``mosquitto_sys_age_seconds`` tells whether $SYS is read at all.
Mosquitto 2.0.11 publishes no in-flight count: the bridge's own
``bridge_inflight_messages`` is what is in flight towards it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt
from prometheus_client import Gauge

from bridge.backoff import Backoff
from bridge.config import BrokerLogin
from bridge.source.mqtt import tls_parameters
from bridge.telemetry import Metrics

log = logging.getLogger("bridge.broker_sys")

SYS_FILTER = "$SYS/broker/#"
# Topic -> (short name, as `bridge doctor` reports it; Prometheus gauge; help).
SYS_TOPICS: dict[str, tuple[str, str, str]] = {
    "$SYS/broker/store/messages/count": (
        "queued",
        "mosquitto_store_messages",
        "Messages held by the broker (queued for sessions, in flight, retained)",
    ),
    "$SYS/broker/store/messages/bytes": (
        "queued_bytes",
        "mosquitto_store_bytes",
        "Payload bytes of the messages held by the broker",
    ),
    "$SYS/broker/publish/messages/dropped": (
        "dropped",
        "mosquitto_dropped_messages",
        "Messages the broker dropped since it started (a session's queue was full: "
        "max_queued_messages or max_queued_bytes)",
    ),
    "$SYS/broker/clients/connected": (
        "clients",
        "mosquitto_clients_connected",
        "Clients connected to the broker",
    ),
    "$SYS/broker/publish/messages/received": (
        "received",
        "mosquitto_received_publishes",
        "PUBLISH messages the broker received since it started",
    ),
}


def sys_value(payload: bytes | bytearray) -> float | None:
    """The number a $SYS payload holds (``"12"``, ``"12 seconds"``), or None."""
    try:
        return float(bytes(payload).split()[0])
    except (IndexError, ValueError):
        return None


class SysExporter:
    """Keeps the broker's $SYS values in ``metrics``' registry."""

    def __init__(self, login: BrokerLogin, client_id: str, metrics: Metrics) -> None:
        self._login = login
        self._client_id = client_id[:64]
        self._gauges = {
            topic: Gauge(gauge, text, registry=metrics.registry)
            for topic, (_, gauge, text) in SYS_TOPICS.items()
        }
        self._last = 0.0
        Gauge(
            "mosquitto_sys_age_seconds",
            "Seconds since the last $SYS value came from the broker (-1: none yet)",
            registry=metrics.registry,
        ).set_function(lambda: time.monotonic() - self._last if self._last else -1.0)

    async def run(self) -> None:
        """Reads $SYS forever, reconnecting with backoff."""
        login = self._login
        backoff = Backoff(1.0, 30.0)
        logged = False
        while True:
            try:
                async with aiomqtt.Client(
                    login.host,
                    login.port,
                    username=login.username,
                    password=login.password.get_secret_value() if login.password else None,
                    identifier=self._client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    tls_params=tls_parameters(login.tls),
                ) as client:
                    # One wildcard: Mosquitto 2.0 hands the retained values to
                    # it, but not always to several exact subscriptions.
                    await client.subscribe(SYS_FILTER)
                    backoff.reset()
                    logged = False
                    async for message in client.messages:
                        self.take(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                if not logged:
                    log.warning("cannot read the broker's $SYS counters: %s; retrying", exc)
                    logged = True
            await asyncio.sleep(backoff.delay())

    def take(self, topic: str, payload: object) -> None:
        gauge = self._gauges.get(topic)
        if gauge is None or not isinstance(payload, bytes | bytearray):
            return
        value = sys_value(payload)
        if value is not None:
            gauge.set(value)
            self._last = time.monotonic()
