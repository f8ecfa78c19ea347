"""Sensors (ESP32, ESPHome, Tasmota...) that publish to the gateway's own broker.

The agent subscribes to each route's topic filter at QoS 1 with a persistent
session, decodes each message with the bridge's own topic templates and
codecs (so a payload the bridge would take, the agent takes), spools the
readings, and only then acks the message: a crash before the commit gets it
redelivered by the local broker. A message that can never be stored (bad
topic field, malformed payload) is counted by reason, logged, and acked.
Readings keep the time the device sent; without one, the receive time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.codec import CODECS, CodecError, DecodeContext
from core.limits import Limits
from core.topics import TopicError, TopicTemplate
from core.types import Point
from edge_agent.collect import Sink
from edge_agent.config import LocalMqttSettings
from edge_agent.telemetry import Metrics

log = logging.getLogger("edge_agent.local_mqtt")

RECEIVE_MAXIMUM = 1000  # unacked messages the local broker may hand us at once
MAX_BATCH = 1000


class LocalMqtt:
    name = "local_mqtt"

    def __init__(self, settings: LocalMqttSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._limits = Limits()  # type: ignore[call-arg]
        self._routes = [(TopicTemplate(r.topic), CODECS[r.codec]) for r in settings.routes]

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        client = self._client(lambda message: loop.call_soon_threadsafe(queue.put_nowait, message))
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 86_400
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(
            self._settings.host, self._settings.port, clean_start=False, properties=props
        )
        client.loop_start()
        try:
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < MAX_BATCH:
                    batch.append(queue.get_nowait())
                readings: list[Point] = []
                for message in batch:
                    readings.extend(self._decode(message))
                await sink.put(self.name, readings)
                for message in batch:
                    client.ack(message.mid, message.qos)
        finally:
            await asyncio.to_thread(self._close, client)

    @staticmethod
    def _close(client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()

    def _client(self, deliver: Any) -> mqtt.Client:
        settings = self._settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5
        )
        client.manual_ack_set(True)  # before connecting: redeliveries come right after CONNACK
        client.reconnect_delay_set(1, 10)
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        where = f"{settings.host}:{settings.port}"

        def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                log.error("the gateway broker at %s refused the connection: %s", where, reason)
                return
            log.info("subscribed to the gateway broker at %s", where)
            c.subscribe([(template.subscription, 1) for template, _ in self._routes])

        def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
            deliver(message)

        client.on_connect = on_connect
        client.on_message = on_message
        return client

    def _decode(self, message: mqtt.MQTTMessage) -> list[Point]:
        received_us = time.time_ns() // 1000
        topic = message.topic
        try:
            for template, codec in self._routes:
                fields = template.match(topic)
                if fields is None:
                    continue
                ctx = DecodeContext(fields.device_id, fields.metric, received_us, self._limits)
                decoded = codec.decode(bytes(message.payload), ctx)
                for reject in decoded.rejects:
                    self._rejected(topic, reject.reason, reject.detail)
                return decoded.points
        except (TopicError, CodecError) as exc:
            self._rejected(topic, exc.reason, exc.detail)
            return []
        self._rejected(topic, "no_route", "no route's template matches the topic")
        return []

    def _rejected(self, topic: str, reason: str, detail: str) -> None:
        self._metrics.local_rejected.labels(reason=reason).inc()
        log.warning("dropped a reading from %s: %s (%s)", topic, reason, detail)
