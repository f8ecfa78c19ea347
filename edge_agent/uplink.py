"""The connection to the cloud broker: paho-mqtt, MQTT v5, QoS 1.

paho runs its network loop in its own thread and reconnects by itself (with
backoff between ``reconnect_min_s`` and ``reconnect_max_s``). This module only
reports what happened, from that thread, into thread-safe queues, and wakes
the forwarder; every decision is the forwarder's, on the event loop.

Flow control is the forwarder's too: paho's own in-flight limit is off (it
scans its whole in-flight list on every PUBACK: with the limit at 2,000 a
publisher topped out at 6-7k messages/s), and the forwarder keeps at most the
broker's Receive Maximum unacknowledged; bench/README.md (bench_edge.py) has
the agent's throughput this way. Messages in flight when the connection drops
stay with paho, which sends them again (DUP) after it reconnects.

Commit receipts (edge_agent/receipts.py): with a ``receipt_topic``, each
connection subscribes to it at QoS 1 and every receipt that arrives goes,
raw, to ``receipts``; ``publish`` with an ``origin`` carries it as the
message's MQTT v5 user property (core/receipts.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.receipts import ORIGIN_PROPERTY
from edge_agent.config import UplinkSettings

log = logging.getLogger("edge_agent.uplink")

# Mosquitto answers a QoS 1 PUBLISH that matched no subscription with this
# reason code, and drops the message. After a broker restart that is every
# message until the bridge has subscribed again (shared subscriptions are not
# restored), so it means "not delivered", like any code >= 0x80.
NO_MATCHING_SUBSCRIBERS = 0x10


def delivered(reason: int) -> bool:
    return reason < 0x80 and reason != NO_MATCHING_SUBSCRIBERS


class Uplink:
    def __init__(
        self,
        settings: UplinkSettings,
        wake: Callable[[], None],
        receipt_topic: str | None = None,
    ) -> None:
        self._settings = settings
        self._wake = wake
        self._receipt_topic = receipt_topic
        self.outcomes: deque[tuple[int, int, str]] = deque()  # mid, reason code, reason name
        self.receipts: deque[bytes] = deque()  # receipt payloads, as they arrived
        self.connected = False
        self.last_error = ""  # why the last connection attempt failed, for /healthz
        self._stopping = False
        self._unreachable_logged = False
        self.connects = 0
        self.receive_maximum = 65_535  # the MQTT default when the broker sends none
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(0)  # no limit in paho: the forwarder keeps the window
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        if settings.tls is not None:
            tls = settings.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self._client = client

    @property
    def where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def start(self) -> None:
        """Connects in the background, and keeps reconnecting until ``stop``."""
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, origin: str | None = None) -> int:
        """Publishes at QoS 1; returns the message id its outcome will carry."""
        props = None
        if origin is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = (ORIGIN_PROPERTY, origin)
        return int(self._client.publish(topic, payload, qos=1, properties=props).mid)

    # --- paho's thread ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"refused the connection: {reason}"
            log.error("the cloud broker at %s %s", self.where, self.last_error)
            return
        self.receive_maximum = int(getattr(props, "ReceiveMaximum", 65_535))
        if self._receipt_topic is not None:
            client.subscribe(self._receipt_topic, qos=1)
        self.connected = True
        self._unreachable_logged = False
        self.connects += 1
        log.info(
            "connected to the cloud broker at %s (receive maximum %d)",
            self.where,
            self.receive_maximum,
        )
        self._wake()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected and not self._stopping:
            log.warning("lost the cloud broker at %s (%s); reconnecting", self.where, reason)
        self.connected = False
        self._wake()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = "cannot reach it"
        if not self._unreachable_logged:
            log.warning(
                "cannot reach the cloud broker at %s; retrying every %d-%d s, readings wait "
                "in the spool",
                self.where,
                self._settings.reconnect_min_s,
                self._settings.reconnect_max_s,
            )
            self._unreachable_logged = True

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._receipt_topic:
            self.receipts.append(bytes(message.payload))
            self._wake()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        self.outcomes.append((mid, int(reason.value), str(reason)))
        self._wake()


def threadsafe_waker(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    """A function any thread may call to set ``event``; it costs a wake-up of
    the loop only when the event is not already set."""

    def wake() -> None:
        if not event.is_set():
            loop.call_soon_threadsafe(event.set)

    return wake
