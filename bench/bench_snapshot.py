"""Mosquitto's snapshot stall, by queued messages: what a shorter
``autosave_interval`` would cost (mosquitto/README.md, direct devices' window).

For each size (10,000, 100,000 and 1,000,000 queued messages of ~60-byte
single-reading payloads): a private Mosquitto (port 31912, persistence on,
autosave never) holds them for a persistent session that subscribed and went
away; then SIGUSR1 makes it write its snapshot while a probe publishes at
QoS 1 one message at a time. The stall is the probe's longest PUBACK wait
from the signal until the snapshot is written (the broker does nothing else
meanwhile), beside the longest of the 200 waits before it (the machine's
noise); also the
snapshot's size, and the restart's load time (start to accepting
connections).

    .venv/bin/python bench/bench_snapshot.py [--sizes 10000,100000,1000000]
                                             [--out FILE]

Prints the figures (and writes ``--out``); nothing else.
"""

from __future__ import annotations

import argparse
import getpass
import json
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = 31912
PAYLOAD = b'{"timestamp": 1764237600123456, "data": {"flow_rate": 1234.5}}'


def wait_port(timeout: float = 300.0) -> float:
    start = time.monotonic()
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", PORT)) == 0:
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"nothing listens on {PORT}")
        time.sleep(0.01)


def client(client_id: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    return c


def park_session() -> None:
    """A session that subscribed at QoS 1 and went away: the broker queues for it."""
    c = client("bench-snapshot-away")
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", PORT, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe("snap/#", qos=1)
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def fill(count: int) -> float:
    c = client("bench-snapshot-fill")
    acked = [0]
    done = threading.Event()

    def on_publish(*args: Any) -> None:
        acked[0] += 1
        if acked[0] >= count:
            done.set()

    c.on_publish = on_publish
    c.connect("127.0.0.1", PORT)
    c.loop_start()
    start = time.monotonic()
    for i in range(count):
        while i - acked[0] > 2000:  # a window, as the edge agent keeps
            time.sleep(0.001)
        c.publish(f"snap/d{i % 1000}", PAYLOAD, qos=1)
    done.wait(600)
    elapsed = time.monotonic() - start
    c.disconnect()
    c.loop_stop()
    return elapsed


def probe_stall(broker: subprocess.Popen[bytes], data: Path) -> tuple[float, float]:
    """The longest QoS 1 round trip from a SIGUSR1 until the snapshot is
    written, and the longest of the 200 before it (the machine's noise)."""
    c = client("bench-snapshot-probe")
    acked = threading.Event()
    c.on_publish = lambda *a: acked.set()
    c.connect("127.0.0.1", PORT)
    c.loop_start()
    waits: list[float] = []
    db = data / "mosquitto.db"
    before = db.stat().st_mtime if db.exists() else 0.0
    signalled = None
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if signalled is None and len(waits) >= 200:
                broker.send_signal(signal.SIGUSR1)
                signalled = len(waits)
            acked.clear()
            sent = time.monotonic()
            c.publish("probe/x", b"1", qos=1)
            acked.wait(60)
            waits.append(time.monotonic() - sent)
            if signalled and db.exists() and db.stat().st_mtime > before and len(waits) > 400:
                break
    finally:
        c.disconnect()
        c.loop_stop()
    assert signalled is not None
    return max(waits[signalled:]), max(waits[:signalled])


def one(size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as folder:
        tmp = Path(folder)
        data = tmp / "data"
        data.mkdir()
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"  # or it drops to `mosquitto`, who cannot write here
            f"listener {PORT} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nautosave_interval 0\n"
            "max_inflight_messages 5000\nmax_queued_messages 2000000\nmax_queued_bytes 0\n"
        )

        def start() -> tuple[subprocess.Popen[bytes], float]:
            proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
            return proc, wait_port()

        broker, _ = start()
        try:
            park_session()
            fill_s = fill(size)
            stall, noise = probe_stall(broker, data)
            size_bytes = (data / "mosquitto.db").stat().st_size
        finally:
            broker.terminate()  # a clean shutdown writes the snapshot again
            broker.wait(300)
        broker, load_s = start()
        broker.terminate()
        broker.wait(300)
    return {
        "queued_messages": size,
        "fill_seconds": round(fill_s, 1),
        "snapshot_stall_ms": round(stall * 1000, 1),
        "probe_max_before_ms": round(noise * 1000, 1),
        "snapshot_bytes": size_bytes,
        "bytes_per_message": round(size_bytes / size),
        "restart_load_seconds": round(load_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        res = one(size)
        print(json.dumps(res))
        results.append(res)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
