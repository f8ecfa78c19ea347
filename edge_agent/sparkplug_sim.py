"""A simulated Sparkplug B edge node (`edge-agent simulate --sparkplug`), so
that a first run shows Sparkplug data too.

One edge node (``<site_id>`` as the group, the uplink's client id as the
node) with ``devices`` devices. It connects to the uplink broker with its
NDEATH as the will (bdSeq counted up per connection), publishes NBIRTH and a
DBIRTH per device (names, aliases, datatypes, values), then DDATA by alias
only, ``rate`` times a second per device, seq 0-255 shared by all its
messages. An NCMD ``Node Control/Rebirth`` makes it publish its births again.
Values: a pump's flow_rate (Double), pip (Float), temperature (Int16, may go
below zero), starts (UInt32), running (Boolean) and mode (String).
Sparkplug N/D messages are QoS 0, as the specification has them; nothing is
spooled.
"""

from __future__ import annotations

import logging
import math
import signal
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.sparkplug import payload as sp
from core.sparkplug import sparkplug_b_pb2 as pb
from core.sparkplug.encode import REBIRTH, SimMetric, birth, data, death
from edge_agent.config import Settings

log = logging.getLogger("edge_agent.sparkplug")

SIGNALS = (  # name, alias offset, datatype
    ("flow_rate", 1, sp.DOUBLE),
    ("pip", 2, sp.FLOAT),
    ("temperature", 3, sp.INT16),
    ("starts", 4, sp.UINT32),
    ("running", 5, sp.BOOLEAN),
    ("mode", 6, sp.STRING),
)


def _values(device: int, t: float) -> list[int | float | bool | str]:
    phase = math.sin(t / 60 + device)
    running = phase > -0.8
    return [
        round(1250 + 250 * phase, 3),
        round(2750 + 250 * math.cos(t / 90 + device), 2),
        int(20 * phase) - 5,
        device * 10 + int(t // 600),
        running,
        "auto" if running else "stopped",
    ]


class EdgeNode:
    def __init__(self, settings: Settings, devices: int, rate: float) -> None:
        up = settings.uplink
        self.group = settings.agent.site_id
        self.node = up.client_id
        self.devices = [f"pump-{i + 1}" for i in range(devices)]
        self.rate = rate
        self.bd_seq = -1
        self.seq = 0
        self._rebirth = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{up.client_id}-sparkplug", protocol=mqtt.MQTTv5
        )
        if up.username is not None:
            client.username_pw_set(
                up.username, up.password.get_secret_value() if up.password else None
            )
        if up.tls is not None:
            client.tls_set(
                ca_certs=str(up.tls.ca_file) if up.tls.ca_file else None,
                certfile=str(up.tls.cert_file) if up.tls.cert_file else None,
                keyfile=str(up.tls.key_file) if up.tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        self.where = (up.host, up.port)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        client.subscribe(self.topic("NCMD"), qos=0)
        self._rebirth.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            command = pb.Payload.FromString(bytes(msg.payload))
        except Exception:  # a command we cannot read is not ours to act on
            log.warning("unreadable NCMD on %s ignored", msg.topic)
            return
        if any(m.name == REBIRTH and m.boolean_value for m in command.metrics):
            log.info("rebirth requested")
            self._rebirth.set()

    def _births(self, now_ms: int, t: float) -> None:
        self.seq = 0
        self.client.publish(
            self.topic("NBIRTH"),
            birth(
                now_ms,
                self._next_seq(),
                [SimMetric("Node Control/Rebirth", 0, sp.BOOLEAN, False)],
                self.bd_seq,
            ),
        )
        for index, device in enumerate(self.devices):
            self.client.publish(
                self.topic("DBIRTH", device),
                birth(now_ms, self._next_seq(), self._metrics(index, t)),
            )

    def _metrics(self, index: int, t: float) -> list[SimMetric]:
        base = (index + 1) * 10
        return [
            SimMetric(name, base + offset, datatype, value)
            for (name, offset, datatype), value in zip(SIGNALS, _values(index, t), strict=True)
        ]

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        host, port = self.where
        started = time.monotonic()
        self.bd_seq = (self.bd_seq + 1) % 256
        self.client.will_set(self.topic("NDEATH"), death(self.bd_seq), qos=1)
        self.client.connect_async(host, port)
        self.client.loop_start()
        log.info(
            "Sparkplug edge node %s/%s with %d devices at %s:%d",
            self.group, self.node, len(self.devices), host, port,
        )  # fmt: skip
        try:
            while not stop.is_set():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                t = time.time()
                now_ms = int(t * 1000)
                if self._rebirth.is_set():
                    self._rebirth.clear()
                    self._births(now_ms, t)
                elif self.client.is_connected():
                    for index, device in enumerate(self.devices):
                        self.client.publish(
                            self.topic("DDATA", device),
                            data(now_ms, self._next_seq(), self._metrics(index, t)),
                        )
                stop.wait(1 / self.rate)
        finally:
            self.client.publish(self.topic("NDEATH"), death(self.bd_seq), qos=1).wait_for_publish(2)
            self.client.disconnect()
            self.client.loop_stop()


def run(settings: Settings, devices: int, rate: float, duration_s: float | None) -> int:
    """Runs until SIGTERM, Ctrl-C or ``duration_s``; publishes the NDEATH on the way out."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    EdgeNode(settings, devices, rate).run(stop, duration_s)
    return 0
