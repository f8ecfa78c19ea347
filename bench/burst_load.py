"""An open-loop HTTP load generator for bench_burst.py: arrivals at stated rates.

Arrival i of a phase is due at phase start + i / rate, whatever the server
does: a slow answer never delays the next arrival (a closed loop would, and
would hide the server's worst moments: coordinated omission). Each arrival
takes an idle keep-alive connection (one idle for less than IDLE_MAX_S) or
opens a new one (up to ``max_connections``; past that it waits for one, and
that wait counts).

Latency is measured from the arrival's due time, so time spent waiting for a
connection, or because this process fell behind, is in it. An arrival whose
request went out more than LATE_S after its due time is counted late, with
how late: coordinated omission shown, not hidden.

Every arrival's outcome is kept (status, 0 for a timeout or a broken
connection), so the bench can check afterwards what the database holds for
each accepted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LATE_S = 0.010
TIMEOUT_S = 30.0
# An idle connection older than this is closed rather than reused: uvicorn
# closes keep-alive connections idle for 5 s, and a request written into one
# it just closed would be lost to the client, not to the server.
IDLE_MAX_S = 2.0


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    rate: float  # arrivals per second


@dataclass
class Outcome:
    phase: str
    key: str  # what the bench checks in the database afterwards
    due: float  # monotonic
    sent: float = 0.0
    done: float = 0.0
    status: int = 0  # 0: no HTTP answer (timeout, connection error)


@dataclass
class Pool:
    host: str
    port: int
    max_connections: int
    # (reader, writer, idle since): the most recently freed is reused first.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = field(
        default_factory=list
    )
    open: int = 0
    opened_total: int = 0
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.freed:
            while True:
                self._close_stale()
                if self.idle or self.open < self.max_connections:
                    break
                await self.freed.wait()
            if self.idle:
                reader, writer, _ = self.idle.pop()
                return reader, writer
            self.open += 1
            self.opened_total += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:  # refused, or cancelled by the request's timeout
            await self.drop(None)
            raise

    def _close_stale(self) -> None:
        now = time.monotonic()
        keep = []
        for reader, writer, since in self.idle:
            if reader.at_eof() or now - since > IDLE_MAX_S:
                writer.close()
                self.open -= 1
            else:
                keep.append((reader, writer, since))
        self.idle[:] = keep

    async def give(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        async with self.freed:
            self.idle.append((conn[0], conn[1], time.monotonic()))
            self.freed.notify()

    async def drop(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is not None:
            conn[1].close()
        async with self.freed:
            self.open -= 1
            self.freed.notify()

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> tuple[int, bool]:
    """Sends one request, reads the answer; (status, whether to keep the connection)."""
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def _one(pool: Pool, out: Outcome, request: bytes) -> None:
    conn = None
    try:
        async with asyncio.timeout(TIMEOUT_S):
            conn = await pool.take()
            out.sent = time.monotonic()
            out.status, keep = await _exchange(conn, request)
        if keep:
            await pool.give(conn)
        else:
            await pool.drop(conn)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        out.status = 0
        if conn is not None:
            await pool.drop(conn)
    out.done = time.monotonic()


async def run_open_loop(
    host: str,
    port: int,
    phases: list[Phase],
    request_for: Callable[[str, int], tuple[str, bytes]],
    *,
    max_connections: int = 2000,
    progress: Callable[[str], None] = print,
) -> tuple[list[Outcome], int]:
    """Runs the phases back to back; request_for(phase, i) -> (key, HTTP request
    bytes), built when the arrival is due. Returns every outcome and the
    number of connections opened."""
    pool = Pool(host, port, max_connections)
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    for phase in phases:
        n = int(phase.seconds * phase.rate)
        progress(
            f"    phase {phase.name}: {n:,} arrivals at {phase.rate:g}/s for {phase.seconds:g}s"
        )
        last_report = time.monotonic()
        for i in range(n):
            due = start + i / phase.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key, request = request_for(phase.name, i)
            out = Outcome(phase.name, key, due)
            outcomes.append(out)
            task = asyncio.create_task(_one(pool, out, request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                answered = sum(1 for o in outcomes if o.done)
                progress(
                    f"      {phase.name}: {i + 1:,}/{n:,} sent, {answered:,} answered in all, "
                    f"{pool.open} connections open"
                )
        start += phase.seconds
    if tasks:
        await asyncio.wait(tasks)
    with contextlib.suppress(Exception):
        pool.close()
    return outcomes, pool.opened_total


def percentile(values: list[float], q: float) -> float | None:
    s = sorted(values)
    if not s:
        return None
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def phase_summary(outcomes: list[Outcome], phase: Phase) -> dict[str, object]:
    """Latency from due time (p50/p95/p99/max ms), service time from send,
    statuses, and late arrivals of one phase."""
    mine = [o for o in outcomes if o.phase == phase.name]
    answered = [o for o in mine if o.status]
    from_due = [(o.done - o.due) * 1000 for o in answered]
    service = [(o.done - o.sent) * 1000 for o in answered if o.sent]
    late = [(o.sent - o.due) * 1000 for o in mine if o.sent and o.sent - o.due > LATE_S]
    statuses: dict[str, int] = {}
    for o in mine:
        label = str(o.status) if o.status else "no answer"
        statuses[label] = statuses.get(label, 0) + 1

    def ms(values: list[float]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            v = percentile(values, q)
            out[name] = None if v is None else round(v, 1)
        return out

    return {
        "seconds": phase.seconds,
        "rate_per_s": phase.rate,
        "arrivals": len(mine),
        "statuses": statuses,
        "errors": len(mine) - statuses.get("202", 0),
        "latency_from_due_ms": ms(from_due),
        "service_time_ms": ms(service),
        "late_arrivals": len(late),
        "late_by_ms": ms(late),
    }
