"""Driving a real `bridge run` process against the test stack, and counting.

Every test gets its own database, its own topic prefix, MQTT client ids and
share group, and its own Redis key prefix, so nothing leaks between tests
even though they share one broker and one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import ROOT, STACK, Stack

Key = tuple[str, str, int]  # device_id, metric, time_us


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    """Polls until predicate() is true; fails the test with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _outside_ephemeral_ports(count: int) -> tuple[int, int]:
    """Where to look for a block: not in the kernel's ephemeral range, whose
    ports any outgoing connection can take between our check and the
    process's bind (a test once failed "address already in use" that way)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32_768, 60_999
    if 65_535 - high > 2_000:
        return high + 1, 65_535 - count
    return 10_000, low - count - 1


def free_port_block(count: int) -> int:
    """A base port with ``count`` free ports after it."""
    first, last = _outside_ephemeral_ports(count)
    for _ in range(200):
        base = random.randint(first, last)
        try:
            for p in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


@dataclass
class Scenario:
    """Names that isolate one test on the shared broker and Redis."""

    stack: Stack
    db_url: str
    tmp: Path
    tag: str = field(default_factory=lambda: "it" + uuid.uuid4().hex[:8])
    routes: list[tuple[str, str]] = field(default_factory=list)  # (template suffix, codec)
    extra: str = ""  # more TOML, appended
    mqtt_port: int | None = None  # default: the test stack's broker
    username: str | None = None  # the bridge's broker login, if the broker wants one
    password: str = ""
    group: str = ""  # default: g<tag>
    root: str | None = None  # topic root that isolates the test; default: the tag

    def topic(self, *levels: str) -> str:
        return "/".join((self._root(), *levels)) if self._root() else "/".join(levels)

    def _root(self) -> str:
        return self.tag if self.root is None else self.root

    @property
    def client_id(self) -> str:
        return f"b{self.tag}"

    def write_config(self, http_port: int, **overrides: Any) -> Path:
        routes = self.routes or [("{site_id}/{device_id}", "seed_json")]
        route_toml = "".join(
            f'[[mqtt.routes]]\ntopic = "{self.topic(t)}"\ncodec = "{c}"\n' for t, c in routes
        )
        login = (
            f'username = "{self.username}"\npassword = "{self.password}"\n' if self.username else ""
        )
        values = {
            "receive_maximum": 2000,
            "max_delay_ms": 50,
            "grace_s": 20,
            "pool_size": 2,
            "maintain_interval_s": 0,
        } | overrides
        path = self.tmp / f"bridge-{self.tag}.toml"
        path.write_text(
            f"""
[database]
url = "{self.db_url}"
pool_size = {values["pool_size"]}
maintain_interval_s = {values["maintain_interval_s"]}

[redis]
url = "{self.stack.redis_url}"
prefix = "{self.tag}:"
timeout_s = 1.0

[mqtt]
host = "127.0.0.1"
port = {self.mqtt_port or self.stack.mqtt_port}
{login}client_id = "{self.client_id}"
group = "{self.group or "g" + self.tag}"
session_expiry_s = 600
receive_maximum = {values["receive_maximum"]}
reconnect_min_s = 0.1
reconnect_max_s = 1.0
{route_toml}
[batch]
max_points = 1000
max_delay_ms = {values["max_delay_ms"]}

[http]
port = {http_port}

[shutdown]
grace_s = {values["grace_s"]}
{self.extra}
"""
        )
        return path


class BridgeProcess:
    """`bridge run` as a subprocess, with its log in the test's tmp folder."""

    def __init__(self, scenario: Scenario, workers: int = 1, **overrides: Any) -> None:
        self.scenario = scenario
        self.workers = workers
        self.http_port = free_port_block(workers)
        self.config = scenario.write_config(self.http_port, **overrides)
        self.log_path = scenario.tmp / f"bridge-{scenario.tag}-{uuid.uuid4().hex[:4]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> BridgeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        argv = [sys.executable, "-m", "bridge.cli", "--config", str(self.config), *extra]
        if not extra:
            argv += ["run", "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=ROOT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, path: str, worker: int = 0) -> str:
        return f"http://127.0.0.1:{self.http_port + worker}{path}"

    def get(self, path: str, worker: int = 0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path, worker), timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def ready(self, worker: int = 0) -> bool:
        return self.get("/readyz", worker)[0] == 200

    def wait_ready(self, timeout: float = 30) -> BridgeProcess:
        for w in range(self.workers):
            wait_until(
                lambda w=w: self.ready(w) or self.exited(),  # type: ignore[misc]
                timeout,
                f"bridge worker {w} ready",
            )
            assert not self.exited(), f"bridge exited early:\n{self.log()[-3000:]}"
        return self

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def metrics(self, worker: int = 0) -> dict[str, float]:
        status, body = self.get("/metrics", worker)
        assert status == 200, status
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def worker_pid(self, worker: int) -> int:
        status, body = self.get("/healthz", worker)
        assert status == 200, status
        return int(orjson.loads(body)["pid"])

    def rss_mb(self, pid: int | None = None) -> float:
        pid = pid or (self.proc.pid if self.proc else 0)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 40) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"bridge did not stop within {timeout}s:\n{self.log()[-3000:]}"
            ) from None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"bridge still running after {timeout}s") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running(bridge: BridgeProcess, *extra: str) -> Iterator[BridgeProcess]:
    bridge.start(*extra)
    try:
        yield bridge
    finally:
        bridge.kill()


class Publisher:
    """A QoS 1 MQTT v5 publisher with a persistent session, which keeps what the
    broker has not acked across broker restarts and resends it.

    Like the edge agent, it treats a PUBACK of "no matching subscribers"
    (0x10) as not delivered and publishes again shortly after: Mosquitto
    2.0.11 does not restore shared subscriptions from its persistence file, so
    right after a broker restart, until the bridge has subscribed again, the
    broker accepts messages for nobody.
    """

    NO_MATCHING_SUBSCRIBERS = 0x10

    def __init__(self, stack: Stack, client_id: str | None = None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.published = 0  # distinct messages handed to publish()
        self.acked = 0  # of those, delivered to at least one subscriber
        self.republished = 0
        self._sent: dict[int, tuple[str, bytes]] = {}
        self._outcomes: deque[tuple[int, int]] = deque()  # (mid, reason) from the network thread
        self._stop = threading.Event()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", stack.mqtt_port, clean_start=False, properties=props)
        self.client.loop_start()
        self._settler = threading.Thread(target=self._settle, daemon=True)
        self._settler.start()

    def _on_publish(
        self, client: object, userdata: object, mid: int, reason: Any, props: object
    ) -> None:
        self._outcomes.append((mid, getattr(reason, "value", 0)))

    def _settle(self) -> None:
        retry: list[tuple[float, tuple[str, bytes]]] = []
        while not self._stop.is_set():
            while self._outcomes:
                mid, reason = self._outcomes[0]
                message = self._sent.pop(mid, None)
                if message is None:  # publish() has not recorded it yet
                    break
                self._outcomes.popleft()
                if reason == self.NO_MATCHING_SUBSCRIBERS:
                    retry.append((time.monotonic() + 0.2, message))
                else:
                    self.acked += 1
            now = time.monotonic()
            due = [m for at, m in retry if at <= now]
            retry = [(at, m) for at, m in retry if at > now]
            for topic, payload in due:
                self.republished += 1
                self._send(topic, payload)
            time.sleep(0.005)

    def _send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        self._sent[info.mid] = (topic, payload)

    def publish(self, topic: str, payload: bytes) -> None:
        self.published += 1
        self._send(topic, payload)

    def publish_all(self, messages: Iterable[tuple[str, bytes]], rate: float | None = None) -> None:
        """Publishes; with ``rate`` (messages/s), paced."""
        started = time.monotonic()
        for n, (topic, payload) in enumerate(messages):
            self.publish(topic, payload)
            if rate:
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            elif self.published - self.acked > 2000:
                wait_until(lambda: self.published - self.acked < 1000, 60, "publisher window")

    def wait_acked(self, timeout: float = 60) -> None:
        wait_until(lambda: self.acked >= self.published, timeout, "broker PUBACKs")

    def close(self) -> None:
        self._stop.set()
        self._settler.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def seed_message(device: str, time_us: int, values: dict[str, float]) -> bytes:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=time_us)
    stamp = moment.isoformat().replace("+00:00", "Z")
    return orjson.dumps({"device_id": device, "timestamp": stamp, "data": values})


def seed_fleet(
    scenario: Scenario, devices: int, readings: int, start_us: int | None = None
) -> tuple[list[tuple[str, bytes]], set[Key]]:
    """Single-reading seed messages (3 metrics each) from a fleet, and the points expected."""
    start_us = start_us or (time.time_ns() // 1000 - 3_600_000_000)
    messages, expected = [], set()
    for r in range(readings):
        for d in range(devices):
            device = f"{scenario.tag}-dev{d:04d}"
            t = start_us + r * 1_000_000 + d  # unique, microsecond precision
            values = {"flow_rate": 1000.5 + r, "pip": 2500.25 + d, "temperature": 70.2}
            messages.append(
                (scenario.topic(f"site{d % 3}", device), seed_message(device, t, values))
            )
            expected.update((device, m, t) for m in values)
    return messages, expected


async def _stored(db_url: str) -> list[Key]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::bigint AS t "
            "FROM telemetry"
        )
        return [(r["device_id"], r["metric"], r["t"]) for r in rows]
    finally:
        await conn.close()


def stored_points(db_url: str) -> list[Key]:
    return asyncio.run(_stored(db_url))


def fetch_rows(db_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def q() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(db_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(q())


def count_rows(db_url: str, sql: str = "SELECT count(*) FROM telemetry") -> int:
    async def q() -> int:
        conn = await asyncpg.connect(db_url)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(q())


def assert_exactly_once(db_url: str, expected: set[Key]) -> None:
    rows = stored_points(db_url)
    assert len(rows) == len(set(rows)), "a point is stored twice"
    missing = expected - set(rows)
    extra = set(rows) - expected
    assert not missing, (
        f"{len(missing)} of {len(expected)} points missing, e.g. {sorted(missing)[:3]}"
    )
    assert not extra, f"{len(extra)} unexpected points, e.g. {sorted(extra)[:3]}"


def stack_service(action: str, service: str) -> None:
    """Stops or starts one service of the test stack (for outage tests)."""
    subprocess.run(["bash", str(STACK), action, "test", service], check=True, capture_output=True)


class Background:
    """Runs a publish in a thread, so a test can break things meanwhile."""

    def __init__(
        self, publisher: Publisher, messages: list[tuple[str, bytes]], rate: float
    ) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(publisher, messages, rate))
        self._thread.start()

    def _run(self, publisher: Publisher, messages: list[tuple[str, bytes]], rate: float) -> None:
        try:
            publisher.publish_all(messages, rate=rate)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "publisher did not finish"
        if self.error is not None:
            raise self.error


def session_messages(
    stack: Stack, client_id: str, quiet_s: float = 1.5
) -> tuple[bool, list[bytes]]:
    """Resumes ``client_id``'s session without acking anything; returns whether a
    session existed and the payloads the broker handed over. Ends nothing: the
    session and its messages stay for the real owner."""
    got: list[bytes] = []
    present: list[bool] = []
    last = [time.monotonic()]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)

    def on_connect(c: mqtt.Client, u: object, flags: Any, rc: object, props: object) -> None:
        present.append(bool(flags.session_present))

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        last[0] = time.monotonic()

    client.on_connect = on_connect
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    client.connect("127.0.0.1", stack.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        wait_until(lambda: bool(present), 10, "CONNACK")
        last[0] = time.monotonic()
        wait_until(lambda: time.monotonic() - last[0] > quiet_s, 120, "session handed over")
    finally:
        client.disconnect()
        client.loop_stop()
    return present[0], got


def points_of_seed(payloads: list[bytes]) -> set[Key]:
    """The points in seed messages published by seed_fleet."""
    out: set[Key] = set()
    for p in payloads:
        msg = orjson.loads(p)
        stamp = dt.datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00"))
        t = (stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        out.update((msg["device_id"], m, t) for m in msg["data"])
    return out
