"""A small MQTT v5 client for asserting what the broker answers: the CONNACK
reason, each PUBACK's and SUBACK's reason codes, what arrives, and whether
the broker dropped the connection."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.harness import wait_until

SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NOT_AUTHORIZED = 0x87  # 135


class Client:
    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        client_id: str = "",
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        host: str = "127.0.0.1",
        session_expiry: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if ca is not None:
            self.client.tls_set(
                ca_certs=str(ca),
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
            )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.session_expiry = session_expiry
        self.connack: int | None = None
        self.assigned_id: str | None = None
        self.error: BaseException | None = None
        self.disconnected = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = reason.value
        if props is not None and hasattr(props, "AssignedClientIdentifier"):
            self.assigned_id = props.AssignedClientIdentifier

    def _on_disconnect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.disconnected.set()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.pubacks[mid] = reason.value

    def _on_subscribe(self, c: Any, u: Any, mid: int, reasons: Any, props: Any) -> None:
        self.subacks[mid] = [r.value for r in reasons]

    def connect(self, timeout: float = 10) -> int | None:
        """The CONNACK reason code, or None when there was none (``error`` says why)."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry
        try:
            self.client.connect(
                self.host, self.port, keepalive=30, clean_start=False, properties=props
            )
        except (ssl.SSLError, OSError) as exc:
            self.error = exc
            return None
        # Our own network loop, not loop_start(): paho's would reconnect on its
        # own after the broker drops us, and these tests must see the drop.
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        try:
            wait_until(
                lambda: self.connack is not None or self.disconnected.is_set(),
                timeout,
                "CONNACK",
                every=0.005,
            )
        except AssertionError as exc:
            self.error = exc
        return self.connack

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                self.disconnected.set()
                return

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        info = self.client.publish(topic, payload, qos=qos)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return info.mid

    def puback(self, mid: int, timeout: float = 10) -> int:
        wait_until(lambda: mid in self.pubacks, timeout, f"PUBACK {mid}", every=0.002)
        return self.pubacks[mid]

    def publish_acked(self, topic: str, payload: bytes) -> int:
        """Publishes at QoS 1; the PUBACK's reason code."""
        return self.puback(self.publish(topic, payload))

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        """The SUBACK's reason codes (granted QoS, or an error >= 0x80)."""
        result, mid = self.client.subscribe(topic, qos=qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        assert mid is not None
        wait_until(lambda: mid in self.subacks, 10, f"SUBACK of {topic}", every=0.005)
        return self.subacks[mid]

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        if self._thread is not None and not self.disconnected.is_set():
            self.client.disconnect()
            wait_until(self.disconnected.is_set, 5, "DISCONNECT sent")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def connack(port: int, username: str | None, password: str | None, **kw: Any) -> int | None:
    """Connects, returns the CONNACK reason code (None: no CONNACK), disconnects."""
    client = Client(port, username, password, **kw)
    try:
        return client.connect()
    finally:
        client.close()


def mqtt_connect_packet(client_id: str = "plain") -> bytes:
    """A minimal MQTT 3.1.1 CONNECT, for talking plain MQTT to a TLS port."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def plain_mqtt_answer(port: int, timeout: float = 5) -> bytes:
    """Sends a plain CONNECT to ``port``; what came back before the broker closed
    the connection (b'' when it closed it without a word)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(mqtt_connect_packet())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
    return got
