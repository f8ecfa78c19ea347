"""The MQTT session of one worker: connect, subscribe, wait, reconnect.

``Session.run`` loops until ``stop`` is set: a new ``MqttSource`` per
connection attempt; connect (resuming the broker session); subscribe (or,
retiring, unsubscribe); wait until the connection drops; reconnect after a
capped, jittered backoff. It reports each new connection before its CONNECT
(``on_connection``, where acks are bound to it: redeliveries follow CONNACK
at once) and the connected state (``on_state``).

Invariants:
  * Every connection the session stops using is closed, whatever the reason
    it was abandoned (connect or subscribe failed or timed out, the broker
    or a read dropped it): its socket is released and it delivers nothing
    more, so nothing received on it can be acked on another.
  * At most one connection is open at a time; the next is made only after
    the previous one is closed.
  * When ``stop`` is set, the current connection is left open for its owner
    to commit, ack and ``close`` (keeping or ending the broker session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiomqtt
from paho.mqtt.properties import Properties

from bridge.backoff import Backoff
from bridge.config import MqttSettings
from bridge.errors import NotConnected
from bridge.source.internals import check_internals
from bridge.source.mqtt import MqttSource
from bridge.source.wire import OnFault, OnMessage, OnOrigin

log = logging.getLogger("bridge.source.session")


def _nothing(*args: object) -> None:
    return None


class Session:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        filters: list[str],
        on_message: OnMessage,
        *,
        on_connection: Callable[[MqttSource], object] = _nothing,
        on_state: Callable[[bool], None] = _nothing,
        on_reconnect: Callable[[], None] = _nothing,
        on_fault: OnFault = _nothing,
        will: Callable[[], aiomqtt.Will] | None = None,
        on_origin: OnOrigin = _nothing,
    ) -> None:
        """``will``: called before each connection attempt for the will to
        connect with, if any."""
        self.settings = settings
        self._on_origin = on_origin
        self.client_id = client_id
        self.filters = filters
        self.source: MqttSource | None = None  # the current connection
        self._on_message = on_message
        self._on_connection = on_connection
        self._on_state = on_state
        self._on_reconnect = on_reconnect
        self._on_fault = on_fault
        self._will = will
        self._connected = False  # subscribed on the current connection

    async def run(self, stop: asyncio.Event, retire: bool = False) -> None:
        """Keeps a connection up until ``stop`` is set. Raises
        MqttInternalsChanged at once if paho or aiomqtt changed under us."""
        check_internals()
        s = self.settings
        backoff = Backoff(s.reconnect_min_s, s.reconnect_max_s)
        first = True
        where = f"{s.host}:{s.port}"
        while not stop.is_set():
            will = self._will() if self._will is not None else None
            source = MqttSource(
                s,
                self.client_id,
                self._on_message,
                self._on_fault,
                on_origin=self._on_origin,
                will=will,
            )
            self.source = source
            self._on_connection(source)
            try:
                try:
                    await source.connect()
                except aiomqtt.MqttError as exc:
                    delay = backoff.delay()
                    log.warning(
                        "cannot connect to MQTT broker %s as %s: %s; retry in %.1fs",
                        where,
                        self.client_id,
                        exc,
                        delay,
                    )
                    await _wait(stop.wait(), delay)
                    continue
                backoff.reset()
                if not first:
                    self._on_reconnect()
                first = False
                log.info(
                    "connected to %s as %s (session %s)",
                    where,
                    self.client_id,
                    "resumed" if source.session_present else "new",
                )
                await self._serve(source, stop, retire)
            finally:
                if not stop.is_set():
                    await source.close()  # abandoned: nothing it holds is acked
            if not stop.is_set():
                log.warning("lost the connection to %s; reconnecting", where)
                await _wait(stop.wait(), backoff.delay())

    async def _serve(self, source: MqttSource, stop: asyncio.Event, retire: bool) -> None:
        try:
            request = source.unsubscribe if retire else source.subscribe
            # No filters: a session that only publishes (the alarm evaluator).
            if self.filters and not await _unless_closed(request(self.filters), source):
                return  # dropped before SUBACK: no point waiting for it
            self._connected = True
            self._on_state(True)
            await _first(source.closed(), stop.wait())
        except aiomqtt.MqttError as exc:
            log.warning("MQTT: %s", exc)
        finally:
            self._connected = False
            self._on_state(False)

    def pause_reading(self) -> None:
        """Stops reading the broker (backpressure) until ``resume_reading``."""
        if self.source is not None:
            self.source.pause_reading()

    def resume_reading(self) -> None:
        if self.source is not None:
            self.source.resume_reading()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def unread(self) -> int:
        """Bytes the broker sent on the current connection that wait, unread."""
        return self.source.unread if self.source is not None else 0

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publishes on the current connection: what the bridge says back to
        the broker (receipts, alarms, Sparkplug commands). QoS 1 returns on the
        broker's PUBACK. Raises NotConnected when there is no connection to
        publish on, or it dropped before the PUBACK: the caller decides whether
        to publish again (nothing is queued here, so nothing piles up)."""
        source = self.source
        # Not only while subscribed: once stop is set the connection stays up
        # for its owner's last commits, acks and receipts.
        if source is None or not (self._connected or source.up):
            raise NotConnected(f"not connected to {self.settings.host}:{self.settings.port}")
        try:
            await source.publish(topic, payload, qos, retain, properties)
        except aiomqtt.MqttError as exc:
            raise NotConnected(f"publish to {topic!r} failed: {exc}") from exc

    async def close(self, end_session: bool = False) -> None:
        """Closes the current connection, keeping the broker session or ending it."""
        if self.source is not None:
            await self.source.close(end_session=end_session)


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _unless_closed(aw: Awaitable[object], source: MqttSource) -> bool:
    """Awaits ``aw`` unless the connection drops first; False if it did."""
    request = asyncio.ensure_future(aw)
    closed = asyncio.ensure_future(source.closed())
    try:
        await asyncio.wait([request, closed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    if request.done():
        request.result()
        return True
    request.cancel()
    await asyncio.wait([request])  # finished, without losing a cancellation of our own
    if not request.cancelled():
        request.exception()  # the connection dropped: that is the news, not this
    return False


async def _wait(aw: Awaitable[object], timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(aw, timeout)
