"""End-to-end ingest: MQTT publish to PostgreSQL commit and Redis update, through `bridge run`.

Starts private services in a temporary folder (Mosquitto 31883, PostgreSQL
35432 with TimescaleDB when the server has it, Redis 36379; nothing of the
dev/test stacks is touched), gives every measurement a fresh migrated
database, and measures side by side:

- copy_limit: the database's own idempotent write rate for the same rows into
  the same table (asyncpg, 2 connections, 1000-row batches: binary COPY into
  a staging table, then INSERT ... ON CONFLICT DO NOTHING: the sink's own
  route), next to plain COPY and an INSERT ... FROM unnest(arrays);
- batch:      publish-to-committed points/s for 100-reading seed_json messages;
- line_protocol: the same readings as 100-line Influx line-protocol messages
              (the line_protocol codec), measured the same way, and its ratio
              to batch (``ratio_line_protocol_to_batch``);
- sparkplug:  the same points as Sparkplug B NDATA of 100 metrics by alias
              (after an NBIRTH per node), through the Sparkplug role, and its
              ratio to batch (``ratio_sparkplug_to_batch``, target 0.80);
              these three run 4 rounds with batch in the middle of each,
              each ratio taken against its own round's batch and the median
              round's reported (``formats_interleaved``; the run of median
              rate is the one reported per format);
- single:     the same for single-reading messages (1 worker, and 2 workers
              when 1 is CPU-bound), plus the drain rate of a queued backlog;
- latency:    publish-to-committed and publish-to-Redis, per message, at half
              load, in three 15-second windows spread over the run, each at
              half the rate of a short batch run just before it (the host's
              speed drifts within minutes); the median window is reported
              (LATENCY_ROUNDS);
- rss_peak_mb: the bridge worker's peak RSS (VmHWM) over all of it;
- alarms:     batch ingest over 1000 devices without alarm rules, then with 10
              rules per metric (30, bench/alarm_load.py), in the same run: the
              ratio of the two; then `bridge alarms run` on the stream the
              workers filled, and how fast it got through it
              (--alarms-only runs just these two phases and writes nothing);
- soak (--soak SECONDS): RSS over a long run at half rate.

Publishers run in their own processes (raw_publisher.py: pre-encoded MQTT v5
PUBLISH packets on a plain socket, QoS 1, a window of 5000 unacked messages). Every component shares this machine's cores, so the
CPU each one used is reported next to every figure.

    .venv/bin/python bench/bench_ingest.py [--quick] [--soak SECONDS] [--profile] [--alarms-only]
    .venv/bin/python bench/bench_ingest.py --quick --formats [--rounds 4]   # the formats only

Every throughput phase starts right after a CHECKPOINT. Prints the machine and
a table with the targets; writes bench/results/ingest.json (not with
--formats, which only prints).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from alarm_load import Evaluator, seed
from services import (
    DISTURBED,
    CpuMeter,
    Ports,
    Services,
    machine_info,
    status_mb,
    wait_quiet,
)

from bridge.cache.reader import CacheReader
from bridge.config import load_settings
from bridge.pipeline import worker_client_id
from bridge.router import Router
from core.types import Point

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"
PG_PORT, REDIS_PORT, MQTT_PORT, HTTP_PORT = 35432, 36379, 31883, 39108
EVAL_PORT = 39190  # the alarm evaluator's /metrics
PORTS = Ports(PG_PORT, REDIS_PORT, MQTT_PORT, also=(HTTP_PORT, EVAL_PORT))
ALARM_DEVICES = 1000
WINDOW = 5000  # the publisher's own flow control: unacked messages at most
METRICS = ("flow_rate", "pip", "temperature")
LATENCY_POLL_S = 0.020
PROGRESS_POLL_S = 0.2  # /metrics polls while waiting for commits, below 97% of them
SOAK_SAMPLE_S = 5.0
TARGETS = {
    "batch_points_per_s": 100_000,
    "ratio_batch_to_limit": 0.65,
    "single_msgs_per_s": 15_000,
    "p99_committed_ms": 500,
    "p99_redis_ms": 300,
    "ratio_sparkplug_to_batch": 0.80,  # issue 14: Sparkplug NDATA vs seed_json batched, same run
    "ratio_rules_to_none": 0.90,
}
CPU_BOUND = 0.80  # a worker above this share of one core is CPU-bound
MACHINE_BOUND = 0.90  # ... and so is one that gets no more because every core is busy

_children: list[Any] = []  # processes to end on the way out, whatever happens
_options: dict[str, Any] = {"profile_out": None, "set": {}}  # from the command line


@dataclass(frozen=True)
class Sizes:
    copy_rows: int
    batch_messages: int  # 100 readings, 300 points each
    batch_devices: int
    single_messages: int  # 1 reading, 3 points each
    single_devices: int
    latency_s: float
    warmup_s: float


FULL = Sizes(600_000, 8_000, 200, 240_000, 1000, 15, 2)
QUICK = Sizes(120_000, 800, 200, 30_000, 1000, 5, 1)


# The line-protocol phase's route: the same topics' shape as seed_json's
# (site and device in the topic), its own prefix.
LINE_PROTOCOL_ROUTE = """
[[mqtt.routes]]
topic = "lp/{site_id}/{device_id}"
codec = "line_protocol"
options = { precision = "ms" }
"""

# ---------------------------------------------------------------- bridge


class Bridge:
    """`bridge run` as a subprocess, configured for the private services."""

    def __init__(
        self,
        svc: Services,
        phase: str,
        db: str,
        workers: int = 1,
        *,
        session_expiry_s: int = 0,
        routes: str = "",
        extra: dict[str, dict[str, Any]] | None = None,
        alarms: bool = False,
    ) -> None:
        self.phase, self.workers = phase, workers
        self.client_id = f"bench-{phase}"
        self.prefix = f"bench-{phase}:"
        self.ports = [HTTP_PORT + i for i in range(workers)]
        self.config = svc.tmp / f"bridge-{phase}.toml"
        self.log_path = svc.tmp / f"bridge-{phase}.log"
        # Defaults everywhere else (batch 1000 points / 200 ms, pool_size 4,
        # receive_maximum 5000) unless --set changes them. Session expiry 0
        # (except to queue a backlog), so a stopped phase leaves no session
        # behind collecting copies of the next phases' messages.
        config: dict[str, dict[str, Any]] = {
            "database": {"url": svc.db_url(db)},
            "redis": {"url": svc.redis_url, "prefix": self.prefix},
            "mqtt": {
                "host": "127.0.0.1",
                "port": MQTT_PORT,
                "client_id": self.client_id,
                "group": f"bench{phase.replace('_', '')}",
                "session_expiry_s": session_expiry_s,
            },
            "http": {"port": HTTP_PORT},
        }
        if alarms:  # the workers feed the alarm stream; the evaluator reads this file too
            config["alarms"] = {
                "enabled": True,
                "http_port": EVAL_PORT,
                "client_id": f"bench-{phase}-alarms",
                "flush_s": 1.0,
            }
        for section, values in [*(extra or {}).items(), *_options["set"].items()]:
            config.setdefault(section, {}).update(values)
        self.config.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                for section, values in config.items()
            )
            + routes  # [[mqtt.routes]] tables, when not the default seed_json route
        )
        self.settings = load_settings(self.config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def filters(self) -> list[str]:
        s = self.settings
        return [f"$share/{s.mqtt.group}/{f}" for f in Router(s.mqtt.routes, s.limits).filters]

    def start(self) -> Bridge:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        # Another checkout's bridge (its own .venv) when compare_ingest.py says so.
        root = _options.get("bridge_root") or ROOT
        python = (
            root / ".venv" / "bin" / "python" if _options.get("bridge_root") else sys.executable
        )
        argv = [str(python), "-m", "bridge.cli", "--config", str(self.config)]
        argv += ["run", "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=root)
        _children.append(self.proc)
        return self

    def _get(self, port: int, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return bytes(r.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 60) -> Bridge:
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while self._get(port, "/readyz") is None:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bridge not ready in {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.1)
        return self

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"bridge exited:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        pids = []
        for port in self.ports:
            body = self._get(port, "/healthz")
            if body is None:
                raise RuntimeError(f"bridge worker on port {port} does not answer")
            pids.append(int(json.loads(body)["pid"]))
        return pids

    def metrics(self) -> dict[str, float]:
        """Every sample of every worker, summed across workers."""
        out: dict[str, float] = {}
        for port in self.ports:
            body = self._get(port, "/metrics")
            if body is None:
                continue
            for line in body.decode().splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    out[name] = out.get(name, 0.0) + float(value)
        return out

    def written(self) -> int:
        return int(self.metrics().get("telemetry_points_total", 0))

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def health_counters(m: dict[str, float]) -> dict[str, float]:
    """The counters that say something went wrong (all should be 0)."""
    keys = ("rejected", "retries", "redis_errors", "duplicate", "reconnects")
    return {
        k: v for k, v in m.items() if any(x in k for x in keys) and not k.endswith("_created") and v
    }


# ---------------------------------------------------------------- publisher


def batch_payloads(n: int, devices: int, start_ms: int) -> Iterator[tuple[str, bytes]]:
    """100-reading seed_json messages (10 Hz readings, one message per 10 s per device)."""
    for k in range(n):
        d, base = k % devices, (k // devices) * 100
        readings = [
            {
                "timestamp": start_ms + (base + i) * 100,
                "data": {"flow_rate": 1000.5 + i, "pip": 2500.25 + d, "temperature": 70.2},
            }
            for i in range(100)
        ]
        yield f"telemetry/site-{d % 10:02d}/dev-{d:05d}", orjson.dumps(readings)


def sparkplug_nodes(sizes: Sizes) -> int:
    """Edge nodes of 100 metrics each with as many series as the batch
    phase's devices of 3 metrics: the same points in the same number of
    series, so that the cache and the database do the same work and only
    the format differs."""
    return max(1, sizes.batch_devices * 3 // 100)


def sparkplug_payloads(n: int, nodes: int, start_ms: int) -> Iterator[tuple[str, bytes]]:
    """Sparkplug B: an NBIRTH per edge node (100 Double metrics, aliases 0-99,
    null values: nothing stored), then `n` NDATA of 100 metrics by alias
    only, round robin over the nodes, 100 ms apart per node."""
    from core.sparkplug import encode
    from core.sparkplug import sparkplug_b_pb2 as pb

    for node in range(nodes):
        msg = pb.Payload(timestamp=start_ms, seq=0)
        msg.metrics.add(name=encode.BD_SEQ, datatype=4, long_value=0)
        for i in range(100):
            msg.metrics.add(name=f"signal_{i:02d}", alias=i, datatype=10, is_null=True)
        yield f"spBv1.0/bench/NBIRTH/node-{node:05d}", msg.SerializeToString()
    for k in range(n):
        node, r = k % nodes, k // nodes
        msg = pb.Payload(timestamp=start_ms + (r + 1) * 100, seq=(r + 1) % 256)
        for i in range(100):
            msg.metrics.add(alias=i, double_value=1000.5 + i + node)
        yield f"spBv1.0/bench/NDATA/node-{node:05d}", msg.SerializeToString()


def line_protocol_payloads(n: int, devices: int, start_ms: int) -> Iterator[tuple[str, bytes]]:
    """batch_payloads' readings as 100 line-protocol lines per message (ms times)."""
    for k in range(n):
        d, base = k % devices, (k // devices) * 100
        lines = [
            f"seed flow_rate={1000.5 + i!r},pip={2500.25 + d!r},temperature=70.2 "
            f"{start_ms + (base + i) * 100}"
            for i in range(100)
        ]
        yield f"lp/site-{d % 10:02d}/dev-{d:05d}", "\n".join(lines).encode()


def single_payloads(n: int, devices: int, start: dt.datetime) -> Iterator[tuple[str, bytes]]:
    """Single-reading seed_json messages, RFC 3339 times, each device once a second."""
    for k in range(n):
        d, r = k % devices, k // devices
        device = f"dev-{d:05d}"
        msg = {
            "device_id": device,
            "timestamp": start + dt.timedelta(seconds=r, milliseconds=d),
            "data": {"flow_rate": 1000.5 + r % 100, "pip": 2500.25 + d, "temperature": 70.2},
        }
        yield f"telemetry/site-{d % 10:02d}/{device}", orjson.dumps(msg, option=orjson.OPT_UTC_Z)


def publisher_main(spec: dict[str, Any], out: Any, go: Any) -> None:
    """A publisher process: encodes its messages, waits for `go`, publishes."""
    from raw_publisher import Encoded, RawPublisher

    messages: list[Encoded] = []
    if spec["kind"] == "batch":
        payloads = batch_payloads(spec["n"], spec["devices"], spec["start_ms"])
        messages = [Encoded(t, p) for t, p in payloads]
    elif spec["kind"] == "sparkplug":
        payloads = sparkplug_payloads(spec["n"], spec["devices"], spec["start_ms"])
        messages = [Encoded(t, p) for t, p in payloads]
    elif spec["kind"] == "line_protocol":
        payloads = line_protocol_payloads(spec["n"], spec["devices"], spec["start_ms"])
        messages = [Encoded(t, p) for t, p in payloads]
    elif spec["kind"] == "single":
        start = dt.datetime.fromtimestamp(spec["start_ms"] / 1000, dt.UTC)
        messages = [Encoded(t, p) for t, p in single_payloads(spec["n"], spec["devices"], start)]
    client = RawPublisher(spec["port"], f"pub-{os.getpid()}", WINDOW)
    out.put(("ready", os.getpid()))
    go.wait()
    first = time.time()
    if spec["kind"] == "paced":
        _publish_paced(client, spec, out)
    else:
        client.publish(messages)
    last_publish = time.time()
    client.wait_acked()
    done = {"first": first, "last_publish": last_publish, "last_ack": time.time()}
    out.put(("done", done | {"sent": client.acked, "retried": client.retried}))
    client.close()


def _publish_paced(client: Any, spec: dict[str, Any], out: Any) -> None:
    """100-reading messages at `rate` messages/s for `duration` s. The first
    reading of each carries its publish time (ms); readings are 1 ms apart."""
    from raw_publisher import Encoded

    rate, duration, devices = spec["rate"], spec["duration"], spec["devices"]
    started = time.time()
    last_t0: dict[int, int] = {}
    k = 0
    while k / rate < duration:
        delay = started + k / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        client.poll()
        d = k % devices
        t0 = max(int(time.time() * 1000), last_t0.get(d, 0) + 100)
        last_t0[d] = t0
        device = f"dev-{d:05d}"
        payload = orjson.dumps(
            [
                {
                    "timestamp": t0 + i,
                    "data": {"flow_rate": 1000.5 + i, "pip": 2500.25 + d, "temperature": 70.2},
                }
                for i in range(100)
            ]
        )
        published = time.time()
        client.publish([Encoded(f"telemetry/site-{d % 10:02d}/{device}", payload)])
        if spec["report"]:
            measured = published - started >= spec["warmup"]
            out.put(("m", device, t0 * 1000, (t0 + 99) * 1000, published, measured))
        k += 1


class Publisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.out = ctx.Queue()
        self.go = ctx.Event()
        self.proc = ctx.Process(
            target=publisher_main, args=({"port": MQTT_PORT} | spec, self.out, self.go)
        )
        self.proc.start()
        _children.append(self.proc)
        self.pid = int(self.get("ready", 300)[0])

    def get(self, kind: str, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.out.get(timeout=0.5)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise RuntimeError("the publisher process died") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"publisher: no {kind!r} in {timeout:.0f}s") from None
                continue
            if item[0] == kind:
                return list(item[1:])

    def start(self) -> None:
        self.go.set()

    def join(self) -> None:
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()


# ---------------------------------------------------------------- profile


PROFILE_RULES = [  # the first rule matching any frame of a sample wins
    ("Redis cache", ("bridge/cache/", "(redis/", "(hiredis", "_redis_writer")),
    (
        "acks (track, settle, PUBACK)",
        ("bridge/ack.py", "Intake.settle (", "_send_ack", "_send_puback"),
    ),
    ("metrics (prometheus)", ("(prometheus_client/", "bridge/telemetry.py", "core/http.py")),
    ("database (COPY + INSERT, asyncpg)", ("sink/timescale.py", "(asyncpg/", "bridge/commit.py")),
    (
        "decode (router + codec)",
        ("core/codec/", "core/rules/", "core/topics.py", "bridge/router.py"),
    ),
    ("batching", ("bridge/batch.py", "Intake._closed (")),
    ("Intake.on_message itself", ("Intake.on_message (",)),
    ("MQTT read (paho, aiomqtt)", ("(paho/", "(aiomqtt/", "source/mqtt.py")),
]
OTHER = "event loop (uvloop/asyncio, no Python frame of ours)"


class Profiler:
    """py-spy record on the bridge worker for the length of a phase (--profile)."""

    def __init__(self, pid: int, phase: str, tmp: Path) -> None:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if exe is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        keep = _options["profile_out"]
        self.path = (Path(keep) if keep else tmp) / f"profile-{phase}.txt"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = [exe, "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
        argv += ["--format", "raw", "--output", str(self.path)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _children.append(self.proc)
        self.started = time.monotonic()

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        by: dict[str, int] = {}
        total = 0
        for line in self.path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            name = next(
                (cat for cat, pats in PROFILE_RULES if any(p in stack for p in pats)),
                OTHER,
            )
            by[name] = by.get(name, 0) + n
        busy = total / (100 * seconds) if seconds else 0.0
        return {
            "samples": total,
            "seconds": round(seconds, 1),
            "busy_share_of_one_core": round(busy, 2),
            "percent_of_busy": {
                k: round(100 * v / total, 1) for k, v in sorted(by.items(), key=lambda i: -i[1])
            },
        }


# ---------------------------------------------------------------- measurements


def copy_limit(svc: Services, rows: int, mode_box: list[str]) -> dict[str, Any]:
    """The database's idempotent write rate for the same rows, no bridge."""
    n_messages = rows // 300
    start_ms = int(time.time() * 1000) - 600_000
    points: list[Point] = []
    for k in range(n_messages):
        d, base = k % 200, (k // 200) * 100
        for i in range(100):
            t = (start_ms + (base + i) * 100) * 1000
            points += [
                Point(t, f"dev-{d:05d}", "flow_rate", 1000.5 + i),
                Point(t, f"dev-{d:05d}", "pip", 2500.25 + d),
                Point(t, f"dev-{d:05d}", "temperature", 70.2),
            ]

    async def go() -> dict[str, Any]:
        mode_box.append(await svc.create_db("bench_copy"))
        url = svc.db_url("bench_copy")
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in COPY_VARIANTS}
        try:
            # Alternating, each into an emptied table, so that order and cache
            # effects fall on every variant alike.
            for variant in list(COPY_VARIANTS) * 2:
                await asyncio.to_thread(wait_quiet)
                conn = await asyncpg.connect(url)
                try:
                    await conn.execute("TRUNCATE telemetry")
                finally:
                    await conn.close()
                runs[variant].append(await _copy_run(url, points, svc.postmaster, variant))
        finally:
            await svc.drop_db("bench_copy")
        rate = {v: statistics.fmean(r["rows_per_s"] for r in runs[v]) for v in runs}
        pg_us = {
            v: round(statistics.fmean(r["postgres_cpu_us_per_row"] for r in runs[v]), 2)
            for v in runs
        }
        return {
            "points_per_s": round(rate["staging"]),
            "rows": len(points),
            "connections": 2,
            "batch_rows": 1000,
            "method": COPY_VARIANTS["staging"] + "; mean of 2 runs, alternating with the "
            "other variants",
            "plain_copy_points_per_s": round(rate["plain_copy"]),
            "unnest_points_per_s": round(rate["unnest"]),
            "unnest_first_try_points_per_s": round(rate["unnest_first_try"]),
            "staging_to_plain_copy": round(rate["staging"] / rate["plain_copy"], 3),
            "postgres_cpu_us_per_row": pg_us,
            "variants": COPY_VARIANTS,
            "runs": runs,
        }

    return asyncio.run(go())


# The reference (points_per_s) is the idempotent COPY: what the database
# does when nothing but the write itself runs. The bridge's own statement is
# measured alongside, and plain COPY shows what idempotence costs.
COPY_VARIANTS = {
    "staging": "per batch, one transaction: binary COPY into a temporary staging table, "
    "then INSERT INTO telemetry SELECT ... FROM it ON CONFLICT DO NOTHING",
    "plain_copy": "per batch, binary COPY straight into telemetry (not idempotent: one "
    "duplicate aborts the batch)",
    "unnest": "per batch, INSERT INTO telemetry SELECT ... FROM unnest(arrays) ON CONFLICT DO "
    "NOTHING, its own transaction (one round trip: the sink's statement once a batch has met "
    "a stored point, for the next 10 s)",
    "unnest_first_try": "per batch, the same without ON CONFLICT (the sink's first try, "
    "which is what it runs when nothing it writes is stored yet)",
}
_CREATE_STAGING = """
CREATE TEMPORARY TABLE bench_staging (
    time_us bigint NOT NULL, device_id text NOT NULL, metric text NOT NULL,
    value double precision NOT NULL
) ON COMMIT DELETE ROWS"""
_FROM_STAGING = """
INSERT INTO telemetry (time, device_id, metric, value)
SELECT TIMESTAMPTZ 'epoch' + time_us * INTERVAL '1 microsecond', device_id, metric, value
FROM bench_staging
ON CONFLICT DO NOTHING"""
_UNNEST = """
INSERT INTO telemetry (time, device_id, metric, value)
SELECT TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond', d, m, v
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[]) AS u(t, d, m, v)
ON CONFLICT DO NOTHING"""
_UNNEST_FIRST_TRY = _UNNEST.replace("\nON CONFLICT DO NOTHING", "")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
COLUMNS = ["time", "device_id", "metric", "value"]


async def _copy_run(url: str, points: list[Point], postmaster: int, variant: str) -> dict[str, Any]:
    rows: list[tuple[Any, ...]] = list(points)
    if variant == "plain_copy":  # telemetry's own column types
        rows = [(_EPOCH + dt.timedelta(microseconds=p[0]), *p[1:]) for p in points]
    conns = [await asyncpg.connect(url) for _ in range(2)]
    batches = iter([rows[i : i + 1000] for i in range(0, len(rows), 1000)])
    written = 0

    async def writer(conn: asyncpg.Connection) -> None:
        nonlocal written
        for batch in batches:
            if variant.startswith("unnest"):
                sql = _UNNEST if variant == "unnest" else _UNNEST_FIRST_TRY
                status = await conn.execute(sql, *zip(*batch, strict=True))
                written += int(status.rsplit(" ", 1)[1])
                continue
            async with conn.transaction():
                if variant == "plain_copy":
                    await conn.copy_records_to_table("telemetry", records=batch, columns=COLUMNS)
                    written += len(batch)
                else:
                    await conn.copy_records_to_table("bench_staging", records=batch)
                    status = await conn.execute(_FROM_STAGING)
                    written += int(status.rsplit(" ", 1)[1])

    try:
        for c in conns:
            await c.execute(_CREATE_STAGING)
        meter = CpuMeter({}, postmaster)  # stopped before the backends exit
        started = time.perf_counter()
        await asyncio.gather(*(writer(c) for c in conns))
        seconds = time.perf_counter() - started
        cpu = meter.stop()
    finally:
        for c in conns:
            await c.close()
    if written != len(points):
        raise RuntimeError(f"copy_limit {variant} wrote {written} of {len(points)} rows")
    return {
        "rows_per_s": round(len(points) / seconds),
        "seconds": round(seconds, 2),
        "postgres_cpu_us_per_row": round(cpu["postgres"] / 100 * seconds * 1e6 / len(points), 2),
        "cpu_percent_of_one_core": cpu,
    }


def count_rows(url: str) -> int:
    async def q() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM telemetry"))
        finally:
            await conn.close()

    return asyncio.run(q())


def background_work(url: str) -> dict[str, Any]:
    """What the database did on its own during a phase: TimescaleDB jobs that
    ran, and autovacuum/autoanalyze passes (they compete for the same cores)."""

    async def q() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            jobs: list[dict[str, Any]] = []
            with contextlib.suppress(asyncpg.PostgresError):
                rows = await conn.fetch(
                    "SELECT j.proc_name, s.total_runs, "
                    "extract(epoch FROM s.last_run_duration)::float8 AS took "
                    "FROM timescaledb_information.jobs j "
                    "JOIN timescaledb_information.job_stats s USING (job_id) "
                    "WHERE s.total_runs > 0 ORDER BY j.job_id"
                )
                jobs = [
                    {
                        "job": r["proc_name"],
                        "runs": r["total_runs"],
                        "last_s": round(r["took"] or 0.0, 3),
                    }
                    for r in rows
                ]
            vac = await conn.fetchrow(
                "SELECT coalesce(sum(autovacuum_count), 0) AS v, "
                "coalesce(sum(autoanalyze_count), 0) AS a FROM pg_stat_all_tables"
            )
            return {
                "timescaledb_jobs_run": jobs,
                "notable": any(j["runs"] > 1 or j["last_s"] > 1 for j in jobs)
                or vac["v"] > 0
                or vac["a"] > 0,
                "autovacuums": int(vac["v"]),
                "autoanalyzes": int(vac["a"]),
            }
        finally:
            await conn.close()

    return asyncio.run(q())


def rate_between(timeline: list[tuple[float, int]], total: int) -> float | None:
    """Points/s between 10% and 90% of `total` (the steady part of a run)."""
    lo = next(((t, n) for t, n in timeline if n >= 0.1 * total), None)
    hi = next(((t, n) for t, n in timeline if n >= 0.9 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def wait_sparkplug_role(bridge: Bridge, timeout: float = 60) -> None:
    """Until a worker holds the Sparkplug role and is subscribed."""
    deadline = time.monotonic() + timeout
    while bridge.metrics().get("bridge_sparkplug_role", 0) < 1:
        bridge.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{bridge.phase}: no Sparkplug role:\n{bridge.log_tail()}")
        time.sleep(0.1)


def points_per_message(kind: str) -> int:
    return {"single": 3, "sparkplug": 100}.get(kind, 300)


def first_sight(bridge: Bridge, kind: str, devices: int, start_ms: int) -> dict[str, Any]:
    """One message per device, 2 s of data time before ``start_ms``, published
    and committed; its rate is that of devices the bridge sees for the first time."""
    per_message = points_per_message(kind)
    warm = Publisher({"kind": kind, "n": devices, "devices": devices, "start_ms": start_ms - 2000})
    warm.start()
    done = warm.get("done", 300)[0]
    warm.join()
    committed_at, _ = wait_committed(bridge, devices * per_message, {})
    seconds = committed_at - done["first"]
    return {
        "messages": devices,
        "points": devices * per_message,
        "seconds": round(seconds, 2),
        "points_per_s": round(devices * per_message / seconds),
    }


def wait_committed(
    bridge: Bridge, n_points: int, rss: dict[int, float], timeout: float = 300
) -> tuple[float, list[tuple[float, int]]]:
    """Polls the bridge's telemetry_points_total until n_points are committed;
    returns the wall time of that poll and the (monotonic, points) timeline."""
    timeline: list[tuple[float, int]] = []
    pids = bridge.worker_pids()
    last_progress, last_n, last_rss = time.monotonic(), -1, 0.0
    while True:
        now_wall, now = time.time(), time.monotonic()
        n = bridge.written()
        timeline.append((now, n))
        if n >= n_points:
            return now_wall, timeline
        if n != last_n:
            last_progress, last_n = now, n
        if now - last_rss > 0.5:
            for pid in pids:
                rss[pid] = max(rss.get(pid, 0.0), status_mb(pid, "VmRSS"))
            last_rss = now
        bridge.check_alive()
        if now - last_progress > 30 or now - timeline[0][0] > timeout:
            raise RuntimeError(
                f"{bridge.phase}: stuck at {n}/{n_points} points:\n{bridge.log_tail()}"
            )
        # Each poll is a /metrics scrape, which costs the bridge 0.4-0.7 ms of
        # CPU: poll rarely in the bulk (rates come from the polls' own counts,
        # so they stay exact) and often near the end, which times the phase.
        time.sleep(0.01 if n >= 0.97 * n_points else PROGRESS_POLL_S)


def throughput(  # noqa: PLR0915 - one phase, start to end
    svc: Services,
    phase: str,
    kind: str,
    messages: int,
    devices: int,
    *,
    workers: int = 1,
    profile: bool = False,
    rules: bool = False,
    inspect: Callable[[str], dict[str, Any]] | None = None,
    warm_up: bool = False,
) -> dict[str, Any]:
    """Publish `messages` as fast as the window allows; time until all committed.
    With ``rules``: 10 alarm rules per metric, and the evaluator running.
    With ``warm_up``: first one message per device, committed before anything
    is measured, so every device is known (its registry row, its cache keys),
    as in a fleet that has been running; its own rate is ``warm_up``.
    ``inspect`` is called with the phase's database URL once everything is
    committed, before the database is dropped; what it returns joins the result."""
    per_message = points_per_message(kind)
    n_points = messages * per_message
    span_s = (messages // devices) * (1 if kind == "single" else 10)
    # Sparkplug: the bridge's Sparkplug role reads spBv1.0/ (QoS 1 here, so
    # that the publisher's window bounds it as in the other phases).
    extra = {"sparkplug": {"enabled": True, "standby_poll_s": 0.2}} if kind == "sparkplug" else None
    spec = {
        "kind": kind,
        "n": messages,
        "devices": devices,
        "start_ms": int(time.time() * 1000) - (span_s + 60) * 1000,
    }
    mode = asyncio.run(svc.create_db(f"bench_{phase}"))
    routes = LINE_PROTOCOL_ROUTE if kind == "line_protocol" else ""
    n_rules = seed(svc.db_url(f"bench_{phase}"), METRICS) if rules else 0
    bridge = Bridge(
        svc, phase, f"bench_{phase}", workers=workers, routes=routes, extra=extra, alarms=rules
    ).start()
    evaluation: dict[str, Any] = {}
    try:
        bridge.wait_ready()
        if kind == "sparkplug":
            wait_sparkplug_role(bridge)
        warmed = first_sight(bridge, kind, devices, spec["start_ms"]) if warm_up else {}
        already = warmed.get("points", 0)
        publisher = Publisher(spec)
        pids = bridge.worker_pids()
        components = {"bridge": [bridge.proc.pid] if bridge.proc else []}
        if workers > 1:
            components["bridge"] += pids
        components |= {
            "mosquitto": [svc.procs["mosquitto"].pid],
            "redis": [svc.procs["redis"].pid],
            "publisher": [publisher.pid],
        }
        asyncio.run(svc.checkpoint())
        waited = wait_quiet()
        prof = Profiler(pids[0], phase, svc.tmp) if profile else None
        meter = CpuMeter(components, svc.postmaster)
        rss: dict[int, float] = {}
        publisher.start()
        committed_at, timeline = wait_committed(bridge, already + n_points, rss)
        timeline = [(t, n - already) for t, n in timeline]
        cpu = meter.stop()
        profile_out = prof.stop() if prof else None
        done = publisher.get("done", 120)[0]
        publisher.join()
        metrics = bridge.metrics()
        hwm = {pid: status_mb(pid, "VmHWM") for pid in pids}
        rss_end = {pid: status_mb(pid, "VmRSS") for pid in pids}
        if rules:
            log = svc.tmp / f"alarms-{phase}.log"
            evaluation = evaluate_stream(Evaluator(bridge.config, log, EVAL_PORT, ROOT), n_points)
            evaluation |= {"rules": n_rules, "feed": feed_counts(metrics)}
    finally:
        bridge.stop()
    stored = count_rows(svc.db_url(f"bench_{phase}"))
    background = background_work(svc.db_url(f"bench_{phase}"))
    inspected = inspect(svc.db_url(f"bench_{phase}")) if inspect else {}
    asyncio.run(svc.drop_db(f"bench_{phase}"))
    if stored != already + n_points:
        raise RuntimeError(f"{phase}: {stored} rows stored, {already + n_points} expected")
    seconds = committed_at - done["first"]
    pub_seconds = done["last_ack"] - done["first"]
    steady = rate_between(timeline, n_points)
    out: dict[str, Any] = {
        "points_per_s": round(n_points / seconds),
        "msgs_per_s": round(messages / seconds),
        "steady_points_per_s": round(steady) if steady else None,
        "workers": workers,
        "messages": messages,
        "points": n_points,
        "points_per_message": per_message,
        "devices": devices,
        "seconds": round(seconds, 2),
        "publisher_msgs_per_s": round(messages / pub_seconds),
        "publisher_retried": done["retried"],
        "publisher_done_before_commit_s": round(committed_at - done["last_ack"], 2),
        "rows_verified": stored,
        "database_mode": mode,
        "batches": int(metrics.get("bridge_batches_total", 0)),
        "mean_batch_points": round(n_points / max(1, metrics.get("bridge_batches_total", 1))),
        "problems": health_counters(metrics),
        "cpu_percent_of_one_core": cpu,
        "cpu_us_per_message": meter.per_unit_us(cpu, messages),
        "disturbed": cpu["other processes"] > DISTURBED,
        "waited_for_quiet_s": waited,
        "database_background": background,
        "rss_peak_mb": round(max(hwm.values()), 1),
        "rss_sampled_max_mb": round(max(rss.values(), default=0.0), 1),
        "rss_end_mb": round(max(rss_end.values()), 1),
    }
    if profile_out:
        out["profile"] = profile_out
    if warmed:
        out["warm_up"] = warmed
    return out | inspected | ({"alarms": evaluation} if evaluation else {})


def feed_counts(metrics: dict[str, float]) -> dict[str, float]:
    """bridge_alarm_feed_batches_total by outcome (sent, skipped, unavailable)."""
    prefix = "bridge_alarm_feed_batches_total{"
    return {k.split('"')[1]: v for k, v in metrics.items() if k.startswith(prefix)}


def evaluate_stream(evaluator: Evaluator, n_points: int) -> dict[str, Any]:
    """The evaluator started once ingest is done, on the stream the workers
    filled: how fast it gets through it (180 s at most). Not run during ingest:
    on the bench machine's shared cores that would measure core sharing, not
    what the rules cost the workers (the evaluator is its own process)."""
    began = time.monotonic()
    evaluator.start()
    try:
        deadline = began + 180
        while evaluator.points() < n_points and time.monotonic() < deadline:
            time.sleep(0.2)
        done = evaluator.points()
        took = time.monotonic() - began
    finally:
        evaluator.stop()
    if done < n_points:
        tail = evaluator.log.read_text(errors="replace").splitlines()[-15:]
        print("  the evaluator did not catch up; its log ends:\n    " + "\n    ".join(tail))
    return {
        "points_evaluated": int(done),
        "caught_up": done >= n_points,
        "seconds": round(took, 1),
        "evaluated_points_per_s": round(done / took),
        "note": "evaluator started after ingest, on the stream the workers filled",
    }


def alarm_phases(svc: Services, sizes: Sizes) -> dict[str, Any]:
    """The same batch ingest over 1000 devices without rules, then with 30."""
    plain = throughput(svc, "rules_none", "batch", sizes.batch_messages, ALARM_DEVICES)
    print_phase("batch, 1000 devices, no alarm rules", plain)
    ruled = throughput(svc, "rules_30", "batch", sizes.batch_messages, ALARM_DEVICES, rules=True)
    print_phase("batch, 1000 devices, 10 alarm rules per metric (the feed on)", ruled)
    ratio = round(ruled["points_per_s"] / plain["points_per_s"], 3)
    ev = ruled["alarms"]
    print(
        f"  alarms: {ratio:.2f} of the rate without rules; then the evaluator went through "
        f"{ev['points_evaluated']:,}/{ruled['points']:,} points in {ev['seconds']}s "
        f"({ev['evaluated_points_per_s']:,} points/s)"
    )
    return {"without_rules": plain, "with_rules": ruled, "ratio_rules_to_none": ratio}


def drain(svc: Services, messages: int, devices: int, profile: bool = False) -> dict[str, Any]:
    """Single-reading messages queued at the broker first, then the bridge
    started: its rate without a publisher competing for the cores."""
    phase = "single_drain"
    n_points = messages * 3
    asyncio.run(svc.create_db(f"bench_{phase}"))
    bridge = Bridge(svc, phase, f"bench_{phase}", session_expiry_s=600)
    client_id = worker_client_id(bridge.settings, 0)
    _session(client_id, bridge.filters, keep=True)  # the worker's session, subscribed
    try:
        start_ms = int(time.time() * 1000) - (messages // devices + 60) * 1000
        publisher = Publisher(
            {"kind": "single", "n": messages, "devices": devices, "start_ms": start_ms}
        )
        publisher.start()
        publisher.get("done", 300)
        publisher.join()
        waited = wait_quiet()
        bridge.start()
        started = bridge.started
        assert bridge.proc is not None
        pids = [bridge.proc.pid]  # one worker: the process itself
        components = {"bridge": pids, "mosquitto": [svc.procs["mosquitto"].pid]}
        # From the launch: the bridge takes messages before /readyz answers.
        # (So the bridge's CPU includes its start-up, about 0.5 s.)
        meter = CpuMeter(components | {"redis": [svc.procs["redis"].pid]}, svc.postmaster)
        bridge.wait_ready()
        rss: dict[int, float] = {}
        prof = Profiler(pids[0], phase, svc.tmp) if profile else None
        _, timeline = wait_committed(bridge, n_points, rss)
        cpu = meter.stop()
        profile_out = prof.stop() if prof else None
        hwm = max(status_mb(pid, "VmHWM") for pid in pids)
        metrics = bridge.metrics()
    finally:
        bridge.stop()
        _session(client_id, [], keep=False)  # ends the session for good
    stored = count_rows(svc.db_url(f"bench_{phase}"))
    background = background_work(svc.db_url(f"bench_{phase}"))
    asyncio.run(svc.drop_db(f"bench_{phase}"))
    if stored != n_points:
        raise RuntimeError(f"{phase}: {stored} rows stored, {n_points} expected")
    steady = rate_between(timeline, n_points) or 0.0
    total_s = timeline[-1][0] - started
    out: dict[str, Any] = {
        "msgs_per_s": round(steady / 3),
        "points_per_s": round(steady),
        "note": "steady rate between 10% and 90% of the backlog; no publisher running",
        "from_process_start_msgs_per_s": round(messages / total_s),
        "messages": messages,
        "problems": health_counters(metrics),
        "cpu_percent_of_one_core": cpu,
        "cpu_us_per_message": meter.per_unit_us(cpu, messages),
        "disturbed": cpu["other processes"] > DISTURBED,
        "waited_for_quiet_s": waited,
        "database_background": background,
        "rss_peak_mb": round(hwm, 1),
    }
    if profile_out:
        out["profile"] = profile_out
    return out


def _session(client_id: str, filters: list[str], keep: bool) -> None:
    """Creates (keep) or ends (not keep) a persistent session for client_id."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600 if keep else 0
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", MQTT_PORT, clean_start=not keep, properties=props)
    client.loop_start()
    try:
        if filters:
            client.subscribe([(f, 1) for f in filters])
            if not subscribed.wait(10):
                raise RuntimeError("no SUBACK for the drain session")
        else:
            time.sleep(0.2)
    finally:
        client.disconnect()
        client.loop_stop()


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 0.50), 1),
        "p90": round(percentile(ms, 0.90), 1),
        "p99": round(percentile(ms, 0.99), 1),
        "max": round(max(ms), 1) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 1) if ms else float("nan"),
        "n": len(ms),
    }


def host_probe_ms() -> float:
    """CPU milliseconds of a fixed loop, the median of five: how fast this
    host is right now. Larger is slower; on a shared host it moves by half
    within minutes while nothing of ours runs, and every phase with it."""
    times = []
    for _ in range(5):
        began = time.process_time()
        total = 0
        for i in range(200_000):
            total += i * i % 7
        times.append((time.process_time() - began) * 1000)
    return round(statistics.median(times), 1)


LATENCY_ROUNDS = 3
"""Latency windows in a full run, spread over it (after the formats, after
the single-reading phases, after the alarm phases). One 15-second window
lands on whatever the host does then: at one fixed rate (half the median
batch round's) the machine went from 112% to 194% busy between windows
minutes apart, and at 160% and more every window's p99 went past 300 ms
(bench/README.md). So each window runs at half of what a short batch run
(CALIBRATE_MESSAGES) ingested just before it: half load on the host as it
is then. The median window (by the Redis p99) is the one reported and
checked; every window is recorded with its rate."""
CALIBRATE_MESSAGES = 3_000  # 900,000 points: a few seconds of batch ingest


def latency(svc: Services, points_per_s: float, sizes: Sizes) -> dict[str, Any]:
    """Per-message publish-to-committed and publish-to-Redis at a paced rate."""
    phase = "latency"
    rate = points_per_s / 300
    probe_before = host_probe_ms()
    asyncio.run(svc.create_db(f"bench_{phase}"))
    bridge = Bridge(svc, phase, f"bench_{phase}").start()
    try:
        bridge.wait_ready()
        publisher = Publisher(
            {
                "kind": "paced",
                "rate": rate,
                "duration": sizes.warmup_s + sizes.latency_s,
                "warmup": sizes.warmup_s,
                "devices": 200,
                "report": True,
            }
        )
        waited = wait_quiet()
        components = {
            "bridge": bridge.worker_pids(),
            "mosquitto": [svc.procs["mosquitto"].pid],
            "redis": [svc.procs["redis"].pid],
            "publisher": [publisher.pid],
        }
        meter = CpuMeter(components, svc.postmaster)
        publisher.start()
        result = asyncio.run(_track(svc, bridge, publisher))
        cpu = meter.stop()
        metrics = bridge.metrics()
        hwm = max(status_mb(pid, "VmHWM") for pid in bridge.worker_pids())
        publisher.join()
    finally:
        bridge.stop()
    background = background_work(svc.db_url(f"bench_{phase}"))
    asyncio.run(svc.drop_db(f"bench_{phase}"))
    return {
        "committed": summary_ms(result["db"]),
        "redis": summary_ms(result["redis"]),
        "rate_points_per_s": round(rate * 300),
        "rate_msgs_per_s": round(rate, 1),
        "duration_s": sizes.latency_s,
        "warmup_s": sizes.warmup_s,
        "poll_interval_ms": LATENCY_POLL_S * 1000,
        "poll_cycle_mean_ms": result["cycle_ms"],
        "never_seen": result["missing"],
        "problems": health_counters(metrics),
        "cpu_percent_of_one_core": cpu,
        "disturbed": cpu["other processes"] > DISTURBED,
        "waited_for_quiet_s": waited,
        "database_background": background,
        "rss_peak_mb": round(hwm, 1),
        "host_probe_ms": {"before": probe_before, "after": host_probe_ms()},
    }


def latency_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median window by Redis p99 (the lower middle of an even count),
    with every window's percentiles, machine CPU and host probe beside it."""
    ordered = sorted(windows, key=lambda w: w["redis"]["p99"])
    median = ordered[(len(ordered) - 1) // 2]
    return median | {
        "windows": [
            {
                "committed_p50": w["committed"]["p50"],
                "committed_p99": w["committed"]["p99"],
                "redis_p50": w["redis"]["p50"],
                "redis_p99": w["redis"]["p99"],
                "machine_percent": w["cpu_percent_of_one_core"]["machine total"],
                "host_probe_ms": w["host_probe_ms"],
                "rate_points_per_s": w["rate_points_per_s"],
                "calibration_points_per_s": w.get("calibration_points_per_s"),
            }
            for w in windows
        ],
        "reported": "the median window by redis p99",
    }


def window(svc: Services, sizes: Sizes, out: list[dict[str, Any]]) -> None:
    """One latency window at half of what batch ingest does right now,
    printed and added to ``out``."""
    n = min(CALIBRATE_MESSAGES, sizes.batch_messages)
    calibration = throughput(svc, "calibrate", "batch", n, sizes.batch_devices)
    measured = latency(svc, calibration["points_per_s"] / 2, sizes)
    out.append(measured | {"calibration_points_per_s": calibration["points_per_s"]})
    print_latency(out[-1], f"latency (window {len(out)}/{LATENCY_ROUNDS})")
    print_phase("", out[-1], rate=False)


def print_latency(lat: dict[str, Any], title: str = "latency") -> None:
    print(
        f"  {title} at {lat['rate_points_per_s']:,} points/s: committed p50 "
        f"{lat['committed']['p50']:.0f} ms p99 {lat['committed']['p99']:.0f} ms; Redis p50 "
        f"{lat['redis']['p50']:.0f} ms p99 {lat['redis']['p99']:.0f} ms; host probe "
        f"{lat['host_probe_ms']['before']} ms"
    )


Record = tuple[str, int, int, float, bool]  # device, t0_us, t_last_us, published, measured

LOOKUP = """
SELECT u.d, u.t FROM unnest($1::text[], $2::bigint[]) AS u(d, t)
WHERE EXISTS (SELECT 1 FROM telemetry x WHERE x.device_id = u.d AND x.metric = 'flow_rate'
              AND x.time = TIMESTAMPTZ 'epoch' + u.t * INTERVAL '1 microsecond')"""


class Tracker:
    """Polls, every LATENCY_POLL_S, the database for the first point of every
    message not yet seen committed (one unique-index lookup each: a message's
    points commit in one transaction) and Redis for the newest time of every
    device with a message not yet seen there."""

    def __init__(self, conn: asyncpg.Connection, cache: aioredis.Redis, prefix: str) -> None:
        self.conn, self.cache, self.prefix = conn, cache, prefix
        self.pending_db: dict[tuple[str, int], Record] = {}
        self.pending_redis: dict[tuple[str, int], Record] = {}
        self.lat_db: list[float] = []
        self.lat_redis: list[float] = []
        self.cycles: list[float] = []
        self.done_at: float | None = None

    def intake(self, out: Any) -> None:
        while True:
            try:
                item = out.get_nowait()
            except queue.Empty:
                return
            if item[0] == "m":
                record: Record = tuple(item[1:])  # type: ignore[assignment]
                self.pending_db[(record[0], record[1])] = record
                self.pending_redis[(record[0], record[1])] = record
            elif item[0] == "done":
                self.done_at = time.monotonic()

    async def poll(self) -> None:
        seen = time.time()  # taken before the snapshot: an upper bound of each commit
        began = time.monotonic()
        if self.pending_db:
            keys = list(self.pending_db)
            rows = await self.conn.fetch(LOOKUP, [k[0] for k in keys], [k[1] for k in keys])
            for r in rows:
                rec = self.pending_db.pop((r["d"], r["t"]))
                if rec[4]:
                    self.lat_db.append(seen - rec[3])
        if self.pending_redis:
            keys = list(self.pending_redis)
            pipe = self.cache.pipeline(transaction=False)
            for device, _ in keys:  # the hash that CacheReader.latest(device) reads
                pipe.hget(f"{self.prefix}latest:{device}", "flow_rate")
            for key, text in zip(keys, await pipe.execute(), strict=True):
                rec = self.pending_redis[key]
                if text is not None and int(text.split(" ", 1)[0]) >= rec[2]:
                    del self.pending_redis[key]
                    if rec[4]:
                        self.lat_redis.append(seen - rec[3])
        self.cycles.append(time.monotonic() - began)

    def finished(self) -> bool:
        if self.done_at is None:
            return False
        settled = not self.pending_db and not self.pending_redis
        return settled or time.monotonic() - self.done_at > 30


# The tracker's lookup planned at every poll, with the table as it is then.
# Its table is new in each window and grows by ~50,000 rows a second; the
# generic plan that PostgreSQL caches after five executions, made while the
# table was tiny, hash-joins a sequential scan of it: 291 ms a poll once it
# held 900,000 rows, 0.6 ms planned afresh (bench/README.md, "the latency
# windows"). At 50 polls a second that took up to 70% of a core in some
# windows (until autoanalyze replanned) and not others.
TRACKER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def _track(svc: Services, bridge: Bridge, publisher: Publisher) -> dict[str, Any]:
    conn = await asyncpg.connect(
        svc.db_url(f"bench_{bridge.phase}"), server_settings=TRACKER_SETTINGS
    )
    cache = aioredis.Redis.from_url(svc.redis_url, decode_responses=True)
    tracker = Tracker(conn, cache, bridge.prefix)
    next_poll = time.monotonic()
    try:
        while True:
            tracker.intake(publisher.out)
            await tracker.poll()
            if tracker.finished():
                break
            bridge.check_alive()
            next_poll += LATENCY_POLL_S
            await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
        await _check_latest_contract(svc, bridge, cache)
    finally:
        await conn.close()
        await cache.aclose()
    return {
        "db": tracker.lat_db,
        "redis": tracker.lat_redis,
        "missing": {"committed": len(tracker.pending_db), "redis": len(tracker.pending_redis)},
        "cycle_ms": round(1000 * statistics.fmean(tracker.cycles), 2) if tracker.cycles else None,
    }


async def _check_latest_contract(svc: Services, bridge: Bridge, cache: aioredis.Redis) -> None:
    """The raw hash read above must agree with CacheReader.latest."""
    raw = await cache.hget(f"{bridge.prefix}latest:dev-00000", "flow_rate")
    async with CacheReader(svc.redis_url, prefix=bridge.prefix) as reader:
        latest = await reader.latest("dev-00000")
    if raw is None or latest["flow_rate"][0] != int(raw.split(" ", 1)[0]):
        raise RuntimeError(f"Redis latest hash read {raw!r} disagrees with CacheReader: {latest}")


def soak(svc: Services, seconds: float, points_per_s: float) -> dict[str, Any]:
    """Steady load at `points_per_s` for `seconds`; RSS sampled every 5 s."""
    phase = "soak"
    rate = points_per_s / 300
    asyncio.run(svc.create_db(f"bench_{phase}"))
    bridge = Bridge(svc, phase, f"bench_{phase}").start()
    samples: list[tuple[float, float, int]] = []  # (minutes, rss MB, committed)
    try:
        bridge.wait_ready()
        pid = bridge.worker_pids()[0]
        publisher = Publisher(
            {"kind": "paced", "rate": rate, "duration": seconds, "devices": 200, "report": False}
        )
        publisher.start()
        started = time.monotonic()
        while True:
            samples.append(
                ((time.monotonic() - started) / 60, status_mb(pid, "VmRSS"), bridge.written())
            )
            bridge.check_alive()
            with contextlib.suppress(queue.Empty):
                item = publisher.out.get(timeout=SOAK_SAMPLE_S)
                if item[0] == "done":
                    break
        sent = item[1]["sent"]
        deadline = time.monotonic() + 60
        while bridge.written() < sent * 300 and time.monotonic() < deadline:
            time.sleep(0.2)
        committed = bridge.written()
        hwm = status_mb(pid, "VmHWM")
        metrics = bridge.metrics()
        publisher.join()
    finally:
        bridge.stop()
    background = background_work(svc.db_url(f"bench_{phase}"))
    asyncio.run(svc.drop_db(f"bench_{phase}"))
    rss = [s[1] for s in samples]
    # The slope leaves out the first minute (pools, caches and arenas filling
    # up) when at least 3 samples remain after it.
    after = [s for s in samples if s[0] >= 1.0]
    steady = after if len(after) >= 3 else samples
    return {
        "seconds": seconds,
        "rate_points_per_s": round(points_per_s),
        "rss_first_mb": round(rss[0], 1),
        "rss_last_mb": round(rss[-1], 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_peak_vmhwm_mb": round(hwm, 1),
        "rss_slope_mb_per_min": round(_slope([s[0] for s in steady], [s[1] for s in steady]), 3),
        "slope_from_minute": round(steady[0][0], 2),
        "samples": [[round(m, 2), round(r, 1)] for m, r, _ in samples],
        "published_points": sent * 300,
        "committed_points": committed,
        "database_background": background,
        "problems": health_counters(metrics),
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


# ---------------------------------------------------------------- report


def machine(svc: Services, mode: str) -> dict[str, Any]:
    libraries = ("paho-mqtt", "aiomqtt", "asyncpg", "redis", "uvloop", "msgspec")
    return machine_info(svc, mode, libraries)


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    t = TARGETS
    lat = r["latency_ms"]
    single = r["single"]
    return [
        ("copy limit, points/s", f"{r['copy_limit']['points_per_s']:,}", "(reference)", None),
        (
            "Sparkplug NDATA / seed batch, points/s",
            f"{r['ratio_sparkplug_to_batch']:.2f}",
            f">= {t['ratio_sparkplug_to_batch']:.2f}",
            r["ratio_sparkplug_to_batch"] >= t["ratio_sparkplug_to_batch"],
        ),
        (
            "batch, points/s",
            f"{r['batch']['points_per_s']:,}",
            f">= {t['batch_points_per_s']:,}",
            r["batch"]["points_per_s"] >= t["batch_points_per_s"],
        ),
        (
            "batch / copy limit",
            f"{r['ratio_batch_to_limit']:.2f}",
            f">= {t['ratio_batch_to_limit']:.2f}",
            r["ratio_batch_to_limit"] >= t["ratio_batch_to_limit"],
        ),
        (
            f"single, msgs/s ({single['workers']} worker{'s' * (single['workers'] > 1)})",
            f"{single['msgs_per_s']:,}",
            f">= {t['single_msgs_per_s']:,}",
            single["msgs_per_s"] >= t["single_msgs_per_s"],
        ),
        ("single, points/s", f"{single['points_per_s']:,}", "(~45,000)", None),
        (
            "p50 / p99 committed, ms",
            f"{lat['committed']['p50']:.0f} / {lat['committed']['p99']:.0f}",
            f"p99 <= {t['p99_committed_ms']}",
            lat["committed"]["p99"] <= t["p99_committed_ms"],
        ),
        (
            "p50 / p99 Redis, ms",
            f"{lat['redis']['p50']:.0f} / {lat['redis']['p99']:.0f}",
            f"p99 <= {t['p99_redis_ms']}",
            lat["redis"]["p99"] <= t["p99_redis_ms"],
        ),
        (
            "10 rules/metric vs none, points/s",
            f"{r['alarms']['ratio_rules_to_none']:.2f}",
            f">= {t['ratio_rules_to_none']:.2f}",
            r["alarms"]["ratio_rules_to_none"] >= t["ratio_rules_to_none"],
        ),
        ("bridge peak RSS, MB", f"{r['rss_peak_mb']:.0f}", "", None),
    ]


def cpu_limited(res: dict[str, Any]) -> bool:
    """The worker used (nearly) a core, or could not get more: every core was busy."""
    cpu = res["cpu_percent_of_one_core"]
    return (
        cpu["bridge"] >= 100 * CPU_BOUND
        or cpu["machine total"] >= MACHINE_BOUND * cpu["machine capacity"]
    )


def print_phase(name: str, res: dict[str, Any], rate: bool = True) -> None:
    cpu = res.get("cpu_percent_of_one_core", {})
    parts = ", ".join(
        f"{k} {v:.0f}%"
        for k, v in cpu.items()
        if k != "machine capacity" and isinstance(v, float) and v >= 1
    )
    if rate:
        text = f"{res['points_per_s']:,} points/s"
        if "msgs_per_s" in res:
            text += f", {res['msgs_per_s']:,} msgs/s"
        print(f"  {name}: {text}")
    if parts:
        print(f"    cpu, % of one core: {parts}")
    if cpu.get("postgres_detail"):
        detail = ", ".join(f"{k} {v:.0f}%" for k, v in cpu["postgres_detail"].items())
        print(f"    postgres by process: {detail}")
    bg = res.get("database_background") or {}
    if bg.get("notable"):  # more than each TimescaleDB job's first run at creation
        jobs = ", ".join(
            f"{j['job']} x{j['runs']} (last {j['last_s']:.2f}s)"
            for j in bg["timescaledb_jobs_run"]
            if j["runs"] > 1 or j["last_s"] > 1
        )
        print(
            f"    database background work: TimescaleDB jobs {jobs or 'only first runs'}; "
            f"autovacuum {bg['autovacuums']}, autoanalyze {bg['autoanalyzes']}"
        )
    if res.get("problems"):
        print(f"    problems: {res['problems']}")
    if res.get("disturbed"):
        print(
            f"    disturbed: other processes used {cpu['other processes']:.0f}% of a core; "
            "rerun on a quiet machine before quoting this figure"
        )


def main() -> None:  # noqa: PLR0912, PLR0915 - one straight sequence of phases
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--soak", type=float, default=0, metavar="SECONDS", help="soak too")
    parser.add_argument("--profile", action="store_true", help="py-spy the bridge (slows it)")
    parser.add_argument(
        "--alarms-only",
        action="store_true",
        help="only the alarm phases (with and without rules); print, write nothing",
    )
    parser.add_argument("--profile-out", metavar="DIR", help="keep py-spy's raw stacks there")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="bridge setting for every phase, e.g. database.pool_size=4 (repeatable)",
    )
    parser.add_argument(
        "--formats",
        action="store_true",
        help="only batch, line_protocol and sparkplug, interleaved, and their ratios; "
        "prints, writes nothing",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"rounds of the formats, taking turns (default {FORMAT_ROUNDS})",
    )
    args = parser.parse_args()
    _options["profile_out"] = args.profile_out
    _options["set"] = parse_sets(args.set)
    sizes = QUICK if args.quick else FULL

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    svc = Services(PORTS, "bench-ingest")
    began = time.monotonic()
    try:
        svc.start()
        if args.formats:
            formats(svc, sizes, args.profile, args.rounds or FORMAT_ROUNDS)
            return
        if args.alarms_only:
            print(json.dumps(alarm_phases(svc, sizes), indent=2, default=str))
            return
        modes: list[str] = []
        copy = copy_limit(svc, sizes.copy_rows, modes)
        info = machine(svc, modes[0])
        shared = f"{info['nproc']} cores shared by every component"
        print(
            f"machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']}, "
            f"PostgreSQL {info['postgresql']} ({modes[0]}"
            + (f" {info['timescaledb']})" if info["timescaledb"] else ")")
            + f", Mosquitto {info['mosquitto']}, Redis {info['redis']}"
        )
        print(f"absolute figures: {shared} (broker, database, Redis, bridge, publisher)")
        print(
            f"  copy limit (idempotent COPY via staging): {copy['points_per_s']:,} points/s; "
            f"plain COPY {copy['plain_copy_points_per_s']:,}, unnest (not used) "
            f"{copy['unnest_points_per_s']:,}; PostgreSQL µs/row "
            + ", ".join(f"{k} {v}" for k, v in copy["postgres_cpu_us_per_row"].items())
        )
        rounds = format_rounds(svc, sizes, FORMAT_ROUNDS, args.profile)
        batch, sparkplug, lines = (median_run(rounds[k]) for k in FORMATS)
        interleaved = format_summary(rounds)
        windows: list[dict[str, Any]] = []
        window(svc, sizes, windows)
        singles = {
            "workers_1": throughput(
                svc,
                "single_w1",
                "single",
                sizes.single_messages,
                sizes.single_devices,
                profile=args.profile,
            )
        }
        print_phase("single, 1 worker", singles["workers_1"])
        if cpu_limited(singles["workers_1"]):
            singles["workers_2"] = throughput(
                svc, "single_w2", "single", sizes.single_messages, sizes.single_devices, workers=2
            )
            print_phase("single, 2 workers", singles["workers_2"])
        best = max(singles.values(), key=lambda s: s["msgs_per_s"])
        single_drain = drain(svc, sizes.single_messages, sizes.single_devices, profile=args.profile)
        print_phase("single, drain of a queued backlog (no publisher)", single_drain)
        window(svc, sizes, windows)
        alarms = alarm_phases(svc, sizes)
        while len(windows) < LATENCY_ROUNDS:
            window(svc, sizes, windows)
        lat = latency_summary(windows)
        print_latency(lat, "latency, median window")
        soaked = soak(svc, args.soak, batch["points_per_s"] / 2) if args.soak else None
        peaks = {"batch": batch["rss_peak_mb"], "latency": lat["rss_peak_mb"]}
        peaks["sparkplug"] = sparkplug["rss_peak_mb"]
        peaks["line_protocol"] = lines["rss_peak_mb"]
        peaks |= {f"single_{k}": v["rss_peak_mb"] for k, v in singles.items()}
        peaks["single_drain"] = single_drain["rss_peak_mb"]
        if soaked:
            peaks["soak"] = soaked["rss_peak_vmhwm_mb"]
        rss_phase = max(peaks, key=peaks.__getitem__)
        results: dict[str, Any] = {
            "what": "bridge end to end: publish (raw socket, MQTT v5, QoS 1) -> Mosquitto -> "
            "`bridge run` -> PostgreSQL commit (+ Redis cache), on private services",
            "note": f"absolute figures: {shared} (broker, database, Redis, bridge, "
            "publisher); see cpu_percent_of_one_core in each run",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": args.quick,
            "machine": info,
            "database_mode": modes[0],
            "bridge_config": "defaults (batch 1000 points / 200 ms, pool_size 4, "
            "receive_maximum 5000), session_expiry_s 0",
            "bridge_overrides": _options["set"],
            "copy_limit": copy,
            "batch": batch,
            "sparkplug": sparkplug,
            "line_protocol": lines,
            "formats_interleaved": interleaved,
            "ratio_sparkplug_to_batch": interleaved["sparkplug"]["ratio"],
            "ratio_line_protocol_to_batch": interleaved["line_protocol"]["ratio"],
            "single": {
                "points_per_s": best["points_per_s"],
                "msgs_per_s": best["msgs_per_s"],
                "workers": best["workers"],
                "runs": singles,
                "drain": single_drain,
            },
            "ratio_batch_to_limit": round(batch["points_per_s"] / copy["points_per_s"], 3),
            "latency_ms": lat,
            "alarms": alarms,
            "rss_peak_mb": peaks[rss_phase],
            "rss_peak_phase": rss_phase,
            "rss_peak_by_phase_mb": peaks,
        }
        if soaked:
            results["soak"] = soaked
        table = verdicts(results)
        results["targets"] = {name: ok for name, _, _, ok in table if ok is not None}
        results["targets_met"] = all(results["targets"].values())
        results["elapsed_s"] = round(time.monotonic() - began, 1)
        write_results(results)
        print_table(table, shared)
        if soaked:
            print(
                f"soak {args.soak:.0f}s: RSS {soaked['rss_first_mb']:.0f} -> "
                f"{soaked['rss_last_mb']:.0f} MB (max {soaked['rss_max_mb']:.0f}), slope "
                f"{soaked['rss_slope_mb_per_min']:+.2f} MB/min"
            )
        if args.profile:
            print_profiles(
                {
                    "batch": batch,
                    "single, 1 worker": singles["workers_1"],
                    "single, drain": single_drain,
                }
            )
        print(f"wrote {RESULTS} ({results['elapsed_s']:.0f}s)")
    finally:
        for child in reversed(_children):
            with contextlib.suppress(Exception):
                if isinstance(child, subprocess.Popen):
                    if child.poll() is None:
                        child.kill()
                        child.wait(10)
                elif child.is_alive():
                    child.kill()
                    child.join(10)
        svc.stop()


FORMATS = ("batch", "sparkplug", "line_protocol")
FORMAT_ROUNDS = 4
"""The formats' ratios are taken round by round, each against the batch phase
of its own round, which runs in the middle so that both other formats run
right beside it, one round before it and the next after it: this host's
speed drifts by 10-40% within minutes with nothing else running (the same
phase's CPU per point moves as much), so only phases run side by side
compare, and one stall in a 15-second phase moves a round's ratio by a
third: the median round is reported, with every round beside it."""


def round_order(r: int) -> tuple[str, ...]:
    """Sparkplug, batch, line protocol; the next round the other way round."""
    order = ("sparkplug", "batch", "line_protocol")
    return order if r % 2 == 0 else order[::-1]


def format_rounds(
    svc: Services, sizes: Sizes, rounds: int, profile: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """seed_json batches, Sparkplug NDATA (three 100-metric messages for each
    300-point seed message: the same points in as many series) and line
    protocol (the same readings), ``rounds`` times (``round_order``)."""
    shapes = {  # (messages, devices)
        "batch": (sizes.batch_messages, sizes.batch_devices),
        "sparkplug": (sizes.batch_messages * 3, sparkplug_nodes(sizes)),
        "line_protocol": (sizes.batch_messages, sizes.batch_devices),
    }
    titles = {
        "batch": "batch",
        "sparkplug": "Sparkplug NDATA, 100 metrics/message",
        "line_protocol": "line protocol (same readings)",
    }
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in FORMATS}
    for r in range(rounds):
        for kind in round_order(r):
            n, devices = shapes[kind]
            res = throughput(svc, kind, kind, n, devices, profile=profile)
            out[kind].append(res)
            print_phase(f"{titles[kind]} (round {r + 1}/{rounds})", res)
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median points/s (the lower middle of an even count)."""
    ordered = sorted(runs, key=lambda res: res["points_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def format_summary(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per format: points/s per round, and its ratio to the same round's
    batch (the median round's, and the range)."""
    base = [res["points_per_s"] for res in rounds["batch"]]
    out: dict[str, Any] = {"batch": {"points_per_s": base}}
    for kind in FORMATS[1:]:
        rates = [res["points_per_s"] for res in rounds[kind]]
        ratios = [rate / b for rate, b in zip(rates, base, strict=True)]
        out[kind] = {
            "points_per_s": rates,
            "ratio_per_round": [round(x, 3) for x in ratios],
            "ratio": round(statistics.median(ratios), 3),
            "range": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    return out


def formats(svc: Services, sizes: Sizes, profile: bool, rounds: int) -> None:
    """The formats alone, interleaved; prints their ratios to batch."""
    summary = format_summary(format_rounds(svc, sizes, rounds, profile))
    for kind in FORMATS[1:]:
        f = summary[kind]
        print(
            f"  {kind} / batch (seed_json): {f['ratio']:.2f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in f['ratio_per_round'])})"
        )


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set database.pool_size=4 -> {"database": {"pool_size": 4}} (TOML values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, text = item.partition("=")
        section, _, name = key.partition(".")
        if not (section and name and text):
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: a string
        out.setdefault(section, {})[name] = value
    return out


def write_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)


def print_table(table: list[tuple[str, str, str, bool | None]], shared: str) -> None:
    print(f"\nresults [{shared}]")
    print(f"  {'figure':<34}{'measured':>16}  {'target':<16}{'met':>4}")
    for name, value, target, ok in table:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"  {name:<34}{value:>16}  {target:<16}{mark:>4}")


def print_profiles(runs: dict[str, dict[str, Any]]) -> None:
    for name, res in runs.items():
        prof = res.get("profile")
        if not prof:
            continue
        print(
            f"\nprofile, {name} (py-spy, {prof['samples']} samples, worker busy "
            f"{prof['busy_share_of_one_core']:.0%} of a core):"
        )
        for cat, pct in prof["percent_of_busy"].items():
            print(f"  {pct:5.1f}%  {cat}")


if __name__ == "__main__":
    main()
