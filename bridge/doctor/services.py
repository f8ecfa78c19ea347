"""The doctor's checks of the processes and services around the database:
the bridge's and the API's memory and pools (their /metrics), Redis's bound
and eviction policy, the broker's queues and drops ($SYS), and clock skew.

Memory is judged against --memory-limit-mb, or, for a process on this host
(a loopback URL), against its cgroup's memory.max or else the host's memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import redis.asyncio as aioredis

from bridge.broker_sys import SYS_FILTER, sys_value
from bridge.broker_sys import SYS_TOPICS as BROKER_SYS
from bridge.config import BrokerLogin, Settings
from bridge.doctor.finding import Finding, Status, bad, ok
from bridge.doctor.options import Options
from bridge.source.mqtt import tls_parameters

MEMORY_WARN, MEMORY_PROBLEM = 0.8, 0.9
SYS_TICK_WAIT_S = 12.0  # Mosquitto's default sys_interval (10 s), and a margin
# What the doctor reads of the broker's $SYS (the exporter reads more).
SYS_TOPICS = {
    topic: name
    for topic, (name, _, _) in BROKER_SYS.items()
    if name in ("queued", "dropped", "clients")
}


def scrape(url: str, timeout: float) -> dict[str, float]:
    """The samples of a Prometheus text exposition at ``url``/metrics."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout) as r:  # noqa: S310 - an operator's URL
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _pid(url: str, timeout: float) -> int | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=timeout) as r:  # noqa: S310
            body = r.read()
    except (OSError, urllib.error.URLError):
        return None
    pid = json.loads(body).get("pid")
    return pid if isinstance(pid, int) else None


def local_limit_bytes(pid: int) -> float | None:
    """The memory limit of process ``pid`` on this host: its cgroup (v2) limit,
    else the host's memory; None if the process is not here."""
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in cgroup.splitlines():
        if line.startswith("0::"):
            limit = Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.max"
            if limit.is_file() and limit.read_text().strip() != "max":
                return float(limit.read_text())
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return float(line.split()[1]) * 1024
    return None


def check_process(url: str, role: str, s: Settings, o: Options) -> list[Finding]:
    """Memory against its limit and, for a bridge worker, its database pool."""
    try:
        samples = scrape(url, o.timeout_s)
    except (OSError, urllib.error.URLError) as exc:
        return [
            bad(
                "memory",
                Status.ERROR,
                f"{role} at {url}: /metrics did not answer ({exc})",
                f"check that the {role} runs and that --{role}-url is its health address",
            )
        ]
    out: list[Finding] = []
    rss = samples.get("process_resident_memory_bytes")
    limit = o.memory_limit_mb * 2**20 if o.memory_limit_mb else None
    if limit is None and urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        pid = _pid(url, o.timeout_s)
        limit = local_limit_bytes(pid) if pid else None
    if rss is None or limit is None:
        out.append(
            bad(
                "memory",
                Status.SKIPPED,
                f"{role} at {url}: resident memory or its limit unknown",
                "pass --memory-limit-mb with the container's limit",
            )
        )
    else:
        share = rss / limit
        summary = f"{role} at {url} uses {rss / 2**20:.0f} MiB of {limit / 2**20:.0f} MiB"
        status = (
            Status.PROBLEM
            if share > MEMORY_PROBLEM
            else Status.WARN
            if share > MEMORY_WARN
            else None
        )
        if status is None:
            out.append(ok("memory", summary, rss=rss, limit=limit))
        else:
            out.append(
                bad(
                    "memory",
                    status,
                    f"{summary} ({share:.0%})",
                    "raise the limit, or bound what is held: mqtt.receive_maximum x the "
                    "largest message for the bridge (README, Performance), api.db_pool_size and "
                    "api.max_page_size for the API",
                    rss=rss,
                    limit=limit,
                )
            )
    used = samples.get('bridge_db_pool_connections{state="used"}')
    idle = samples.get('bridge_db_pool_connections{state="idle"}')
    if used is not None and idle is not None:
        if used >= s.database.pool_size and idle == 0:
            out.append(
                bad(
                    "pool use",
                    Status.PROBLEM,
                    f"{role} at {url}: its pool is saturated, all {used:.0f} of "
                    f"database.pool_size {s.database.pool_size} connections busy",
                    "the database is slow or blocked (see slow queries and locks); if it has "
                    "headroom, raise database.pool_size or add workers",
                )
            )
        else:
            out.append(ok("pool use", f"{role} at {url}: {used:.0f} busy, {idle:.0f} idle"))
    return out


async def check_redis(s: Settings, o: Options) -> list[Finding]:
    client = aioredis.Redis.from_url(s.redis.url, socket_timeout=o.timeout_s)
    try:
        raw = {
            **await client.config_get("maxmemory"),
            **await client.config_get("maxmemory-policy"),
            **await client.config_get("save"),
            **await client.config_get("appendonly"),
        }
        evicted = (await client.info("stats"))["evicted_keys"]
        used = (await client.info("memory"))["used_memory"]
        before = time.time()
        secs, micros = await client.time()
        after = time.time()
    finally:
        await client.aclose()
    config = {_text(k): _text(v) for k, v in raw.items()}
    maxmemory, policy = int(config["maxmemory"]), config["maxmemory-policy"]
    data = {"maxmemory": maxmemory, "policy": policy, "used": used, "evicted_keys": evicted}
    out: list[Finding] = []
    sizing = "size it with `bridge plan` (Redis bytes per series x devices x metrics)"
    if maxmemory == 0:
        out.append(
            bad(
                "redis policy",
                Status.PROBLEM,
                f"Redis has no maxmemory (using {used / 2**20:.0f} MiB): the cache grows "
                "with the fleet until the host runs out",
                f"CONFIG SET maxmemory <bytes> and maxmemory-policy allkeys-lru, and put both "
                f"in redis.conf; {sizing}",
                **data,
            )
        )
    if policy != "allkeys-lru":
        out.append(
            bad(
                "redis policy",
                Status.PROBLEM,
                f"maxmemory-policy is {policy}"
                + (
                    ": at the bound, the bridge's cache writes fail"
                    if policy == "noeviction"
                    else ""
                ),
                "CONFIG SET maxmemory-policy allkeys-lru (and in redis.conf): the cache may "
                "lose any key, the API falls back to the database",
                **data,
            )
        )
    if config["save"] or config["appendonly"] == "yes":
        out.append(
            bad(
                "redis policy",
                Status.WARN,
                "Redis persists the cache (save or appendonly): forks and disk writes for "
                "data the database already holds",
                'save "" and appendonly no in redis.conf (deploy/compose/redis.conf says why)',
                **data,
            )
        )
    if not out:
        out.append(
            ok(
                "redis policy",
                f"maxmemory {maxmemory / 2**20:.0f} MiB, {policy}, {evicted} evicted",
                **data,
            )
        )
    skew = secs + micros / 1e6 - (before + after) / 2
    out.append(skew_finding("redis", skew, (after - before) / 2, o))
    return out


async def check_broker(s: Settings, o: Options) -> list[Finding]:
    login: BrokerLogin = s.mqtt
    seen: dict[str, float] = {}
    async with aiomqtt.Client(
        login.host,
        login.port,
        username=login.username,
        password=login.password.get_secret_value() if login.password else None,
        # Unique per run: two doctors under one id would take over each
        # other's connection, and the one taken over would see no $SYS value.
        identifier=f"{s.mqtt.client_id}-doctor-{os.getpid()}-{secrets.token_hex(3)}"[-64:],
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=tls_parameters(login.tls),
        timeout=o.timeout_s,
    ) as client:
        # One wildcard: Mosquitto 2.0 delivers the retained $SYS values to it
        # at once, but not always to several exact subscriptions (measured).
        await client.subscribe(SYS_FILTER)
        await _collect(client, seen, o.timeout_s)
    where = f"{login.host}:{login.port}"
    if not seen:
        return [
            bad(
                "broker queues",
                Status.ERROR,
                f"the broker at {where} sent nothing under $SYS/broker/",
                "let the bridge's broker user read $SYS/broker/# (ACL: topic read $SYS/broker/#), "
                "and keep sys_interval above 0",
            )
        ]
    if "queued" not in seen:
        # $SYS is readable (other values came), but Mosquitto 2.0.11 does not
        # always hand over this retained value; it comes with the next change.
        return [
            bad(
                "broker queues",
                Status.WARN,
                f"the broker at {where} sent $SYS values but not its queue depth "
                f"($SYS/broker/store/messages/count) within {o.timeout_s:g} s",
                "run `bridge doctor` again after the broker's sys_interval, or read it with "
                "mosquitto_sub -t '$SYS/broker/store/messages/count'",
                **seen,
            )
        ]
    data = {**seen}
    out: list[Finding] = []
    if seen.get("dropped", 0) > 0:
        out.append(
            bad(
                "broker queues",
                Status.PROBLEM,
                f"the broker dropped {seen['dropped']:.0f} messages since it started: a session's "
                "queue reached max_queued_messages or max_queued_bytes",
                "add bridge workers or fix what slows them (database, pool); raise the queue "
                "bounds (bridge broker render --max-queued-messages/--max-queued-mb); a removed "
                "worker's session still receiving its share needs `bridge retire`",
                **data,
            )
        )
    if seen["queued"] > o.queue_warn:
        out.append(
            bad(
                "broker queues",
                Status.WARN,
                f"{seen['queued']:.0f} messages are stored at the broker (above {o.queue_warn})",
                "the bridge is behind or a worker is offline: check each worker's /readyz and "
                "bridge_inflight_messages; `bridge retire` the sessions of workers gone for good",
                **data,
            )
        )
    if not out:
        out.append(
            ok("broker queues", f"{seen['queued']:.0f} messages queued, none dropped", **data)
        )
    out.append(
        bad(
            "clock skew",
            Status.SKIPPED,
            f"the broker at {where} does not tell its time over MQTT",
            "run NTP (chrony or systemd-timesyncd) on the broker host as on the others",
        )
    )
    return out


async def _collect(client: aiomqtt.Client, seen: dict[str, float], timeout_s: float) -> None:
    """Fills ``seen`` from $SYS until every value came, or for a second after
    the queue depth came (dropped is published only once it changes), or
    until ``timeout_s``."""
    start = time.monotonic()
    deadline = start + timeout_s
    # Mosquitto 2.0.11 does not always hand over the retained values (seen
    # in a fresh test broker). Our own connection changes clients/connected,
    # which the broker publishes at its next $SYS tick (sys_interval, 10 s by
    # default): wait that long for a first value.
    first_deadline = start + max(timeout_s, SYS_TICK_WAIT_S)
    messages = aiter(client.messages)
    while len(seen) < len(SYS_TOPICS):
        left = (deadline if seen else first_deadline) - time.monotonic()
        if "queued" in seen:
            left = min(left, 1.0)
        try:
            message = await asyncio.wait_for(anext(messages), max(left, 0))
        except TimeoutError:
            return
        name = SYS_TOPICS.get(str(message.topic))
        if name is not None and isinstance(message.payload, bytes | bytearray):
            value = sys_value(message.payload)
            if value is not None:
                seen[name] = value


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def skew_finding(what: str, skew: float, uncertainty: float, o: Options) -> Finding:
    summary = f"{what} clock is {skew:+.3f} s from this host's (+/- {uncertainty:.3f})"
    if abs(skew) - uncertainty > o.max_skew_s:
        return bad(
            "clock skew",
            Status.PROBLEM,
            summary,
            "synchronise the clocks (NTP): the bridge stamps receive times, the API joins "
            "Redis and the database on time, and points too far ahead are rejected",
            skew_s=skew,
        )
    return ok("clock skew", summary, skew_s=skew)
