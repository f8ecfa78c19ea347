"""One measurement of one contender (bench_peers.py): live rate, backlog drain, kill -9.

Every phase gets a fresh migrated database, and every figure is read from that
database, the same way for every contender, so no contender's own counters are
trusted: progress from count(*) of `telemetry`, polled (the timeline, the
kill's moment), and the times of the first and the last commit that wrote
rows from their commit timestamps (the server runs with
track_commit_timestamp = on), so a rate does not depend on the polling. A phase ends when every point is
stored or when nothing new arrived for `stall_s`; then missing points are
counted, never assumed. Duplicates are counted as rows beyond the distinct
(device_id, metric, time) keys (the table's unique key makes that 0 unless
the key is dropped; a peer's INSERT that hits it fails and is logged, and its
rows are counted missing).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import bench_ingest
from bench_ingest import Publisher, _session
from services import DISTURBED, CpuMeter, Services, status_mb, wait_quiet

from peers.contenders import Contender, make

POLL_S = 0.25
PROGRESS_S = 5.0


class Rows:
    """count(*) of telemetry on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))

    def count(self) -> int:
        return int(
            self.loop.run_until_complete(self.conn.fetchval("SELECT count(*) FROM telemetry"))
        )

    def keys(self) -> tuple[int, int]:
        """(rows, distinct (device_id, metric, time) keys)."""
        row = self.loop.run_until_complete(
            self.conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT (device_id, metric, time)) AS d FROM telemetry"
            )
        )
        return int(row["n"]), int(row["d"])

    def commit_span(self) -> tuple[float, float] | None:
        """Wall-clock times (epoch s) of the first and the last commit that
        wrote rows (track_commit_timestamp is on in the bench's server)."""
        row = self.loop.run_until_complete(
            self.conn.fetchrow(
                "SELECT extract(epoch FROM min(pg_xact_commit_timestamp(xmin)))::float8 AS a, "
                "extract(epoch FROM max(pg_xact_commit_timestamp(xmin)))::float8 AS b "
                "FROM telemetry"
            )
        )
        return None if row["a"] is None else (float(row["a"]), float(row["b"]))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


class Watch:
    """Polls the row count into a (seconds since t0, rows) timeline; samples RSS."""

    def __init__(self, rows: Rows, contender: Contender, label: str, total: int, t0: float) -> None:
        self.rows, self.c, self.label, self.total, self.t0 = rows, contender, label, total, t0
        self.timeline: list[tuple[float, int]] = []
        self.rss: dict[str, float] = {}
        self.n = 0
        self._printed = time.monotonic()

    def poll(self) -> int:
        self.n = self.rows.count()
        now = time.monotonic()
        self.timeline.append((round(now - self.t0, 3), self.n))
        for who, pid in (
            ("contender", self.c.pid),
            ("mosquitto", self.c.svc.procs["mosquitto"].pid),
        ):
            self.rss[who] = max(self.rss.get(who, 0.0), status_mb(pid, "VmRSS"))
        if now - self._printed > PROGRESS_S:
            self._printed = now
            pct = 100 * self.n / self.total
            print(
                f"      {self.label}: {self.n:,}/{self.total:,} rows ({pct:.0f}%), "
                f"{now - self.t0:.0f}s",
                flush=True,
            )
        return self.n

    def until(self, target: int, stall_s: float, fast: bool = False) -> bool:
        """Polls until `target` rows or no progress for stall_s; True when reached.
        `fast` polls back to back: a kill must land before a contender that
        stores a backlog in a few large commits has finished (the kill phase
        measures losses, not speed, so the polling's load does not matter)."""
        last_n, last_change = -1, time.monotonic()
        while self.poll() < target:
            if self.n != last_n:
                last_n, last_change = self.n, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                return False
            self.c.check_alive()
            time.sleep(POLL_S / 25 if fast else self._pause(target))
        return True

    def _pause(self, target: int) -> float:
        """Half the time the current rate needs to reach target, within
        [POLL_S / 25, POLL_S]: a kill at 50% lands near 50%."""
        if len(self.timeline) < 2:
            return POLL_S
        (t1, n1), (t2, n2) = self.timeline[-2:]
        rate = (n2 - n1) / (t2 - t1) if t2 > t1 else 0.0
        if rate <= 0:
            return POLL_S
        return min(POLL_S, max(POLL_S / 25, (target - n2) / rate / 2))


def _spec(kind: str, messages: int, devices: int, port: int) -> dict[str, Any]:
    span_s = (messages // devices) * (10 if kind == "batch" else 1)
    start_ms = int(time.time() * 1000) - (span_s + 60) * 1000
    return {"kind": kind, "n": messages, "devices": devices, "start_ms": start_ms, "port": port}


def _components(svc: Services, c: Contender, publisher: int | None) -> dict[str, list[int]]:
    out = {
        c.name: [c.pid],
        "mosquitto": [svc.procs["mosquitto"].pid],
        "redis": [svc.procs["redis"].pid],
    }
    if publisher:
        out["publisher"] = [publisher]
    return out


def _end(
    svc: Services, c: Contender, db: str, rows: Rows
) -> tuple[int, int, tuple[float, float] | None]:
    """Stops the contender and ends its session; (rows, distinct keys, commit span)."""
    c.stop()
    client_id, _ = c.session
    _session(client_id, [], keep=False)  # ends its session: nothing queues for it any more
    stored, distinct = rows.keys()
    span = rows.commit_span()
    rows.close()
    asyncio.run(svc.drop_db(db))
    return stored, distinct, span


def live(
    svc: Services,
    name: str,
    kind: str,
    phase: str,
    *,
    messages: int,
    devices: int,
    stall_s: float,
    quiet_s: float,
) -> dict[str, Any]:
    """Publishes `messages` as fast as the publisher's window allows while the
    contender runs; points/s from the first publish to the last row stored."""
    per_message = 300 if kind == "batch" else 3
    total = messages * per_message
    db = f"peers_{phase}"
    asyncio.run(svc.create_db(db))
    c = make(name, svc, db, phase, backlog=False)
    rows = Rows(svc.db_url(db))
    try:
        c.start().wait_ready()
        publisher = Publisher(_spec(kind, messages, devices, svc.ports.mqtt))
        waited = wait_quiet(quiet_s)
        meter = CpuMeter(_components(svc, c, publisher.pid), svc.postmaster)
        t0 = time.monotonic()
        watch = Watch(rows, c, f"{name} {kind}", total, t0)
        publisher.start()
        complete = watch.until(total, stall_s)
        cpu = meter.stop()
        hwm = status_mb(c.pid, "VmHWM")
        done = publisher.get("done", 120)[0]
        publisher.join()
        errors = c.errors()
        tail = "" if complete else c.log_tail()
    finally:
        stored, distinct, span = _end(svc, c, db, rows)
    # To the commit of the last row (its commit timestamp), from the first publish.
    seconds = (span[1] if span else time.time()) - done["first"]
    return {
        "points_per_s": round(distinct / seconds) if complete else None,
        "complete": complete,
        "messages": messages,
        "points": total,
        "stored": distinct,
        "missing": total - distinct,
        "duplicated": stored - distinct,
        "errors_logged": errors,
        "seconds": round(seconds, 2),
        "publisher_retried": done["retried"],
        "rss_peak_mb": round(hwm, 1),
        "mosquitto_rss_max_mb": round(watch.rss.get("mosquitto", 0.0), 1),
        "cpu_percent_of_one_core": cpu,
        "disturbed": cpu["other processes"] > DISTURBED,
        "waited_for_quiet_s": waited,
        "timeline": watch.timeline,
    } | ({"log_tail": tail} if tail else {})


def backlog(
    svc: Services,
    name: str,
    phase: str,
    *,
    messages: int,
    devices: int,
    stall_s: float,
    quiet_s: float,
    kill_at: float | None = None,
) -> dict[str, Any]:
    """Queues `messages` single-reading messages for the contender's session
    while it is stopped, then starts it. With kill_at, kill -9 once that share
    of the points is stored, and start it again as a user would."""
    total = messages * 3
    db = f"peers_{phase}"
    asyncio.run(svc.create_db(db))
    c = make(name, svc, db, phase, backlog=True)
    client_id, filters = c.session
    _session(client_id, filters, keep=True)
    rows = Rows(svc.db_url(db))
    out: dict[str, Any] = {"messages": messages, "points": total}
    try:
        print(f"      queuing {messages:,} messages for {name}'s session ...", flush=True)
        publisher = Publisher(_spec("single", messages, devices, svc.ports.mqtt))
        publisher.start()
        publisher.get("done", 600)
        publisher.join()
        out["waited_for_quiet_s"] = wait_quiet(quiet_s)
        c.start()
        t0, started_wall = c.started, time.time() - (time.monotonic() - c.started)
        meter = CpuMeter(_components(svc, c, None), svc.postmaster) if kill_at is None else None
        watch = Watch(rows, c, f"{name} {'kill' if kill_at else 'drain'}", total, t0)
        hwm = 0.0
        if kill_at is not None:
            watch.until(int(kill_at * total), stall_s, fast=True)
            hwm = status_mb(c.pid, "VmHWM")
            c.kill()
            out["killed_at_points"] = watch.poll()
            # A fast contender may have stored everything before the kill landed:
            # then this phase says nothing about what a kill loses (use a larger backlog).
            out["kill_landed_mid_drain"] = out["killed_at_points"] < total
            out["killed_at_s"] = round(time.monotonic() - t0, 2)
            c.start().wait_ready()
        complete = watch.until(total, stall_s)
        if meter:
            cpu = meter.stop()
            out["cpu_percent_of_one_core"] = cpu
            out["disturbed"] = cpu["other processes"] > DISTURBED
        hwm = max(hwm, status_mb(c.pid, "VmHWM"))
        out["errors_logged"] = c.errors()
        if not complete and kill_at is None:  # after a kill, losses are the finding
            out["log_tail"] = c.log_tail()
    finally:
        stored, distinct, span = _end(svc, c, db, rows)
    out |= {
        "complete": complete,
        "stored": distinct,
        "missing": total - distinct,
        "duplicated": stored - distinct,
        "rss_peak_mb": round(hwm, 1),
        "mosquitto_rss_max_mb": round(watch.rss.get("mosquitto", 0.0), 1),
        "timeline": watch.timeline,
    }
    if kill_at is None:
        # From process start (and from the first commit) to the last commit.
        seconds = (span[1] if span else time.time()) - started_wall
        rows_span = span[1] - span[0] if span else 0.0
        out["from_start_points_per_s"] = round(distinct / seconds) if complete else None
        out["first_to_last_points_per_s"] = (
            round(distinct / rows_span) if complete and rows_span > 0 else None
        )
        out["seconds"] = round(seconds, 2)
        out["first_commit_after_start_s"] = round(span[0] - started_wall, 2) if span else None
    return out


def patch_ports(mqtt: int, http: int) -> None:
    """bench_ingest's Bridge, Publisher and _session read its module ports."""
    bench_ingest.MQTT_PORT = mqtt
    bench_ingest.HTTP_PORT = http
