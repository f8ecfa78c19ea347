"""HTTP ingest: readings in a request body, checked by the rules every codec
uses, committed to the database before the answer (or, with api.ingest_via =
broker, accepted by the broker: bridge/api/publish.py; what it does not
accept comes here).

A body is one reading or a batch of them, in the seed's shape::

    {"device_id": "pump-1", "site_id": "site-1", "timestamp": "2026-11-27T10:00:00Z",
     "data": {"flow_rate": 1234.5, "pip": 2750.25, "running": true}}
    {"readings": [<reading>, ...]}

``timestamp`` is optional (the receive time), ``site_id`` too. A request is
all or nothing: when any point is invalid, nothing is stored and the answer
lists every problem, so a client never has to work out what went in.

Durability: the answer comes after the points are committed to PostgreSQL
(then they go to the cache, best effort), by the committer the MQTT pipeline
uses (bridge.commit). Concurrent requests share commits: a writer takes
everything waiting when it is free, so a busy API makes few, larger
transactions and an idle one answers after a single small commit. A point
the database refuses for good (a constraint the rules do not know) is
dead-lettered as the MQTT pipeline does it, and the answer names it; the
request's other points are stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from bridge.api.problems import ApiError
from bridge.batch import Batch
from bridge.cache.feed import CacheFeed
from bridge.cache.writer import CacheWriter
from bridge.commit import Committer
from bridge.errors import TransientDbError
from bridge.sink.timescale import TimescaleSink
from bridge.telemetry import CommitMetrics
from core.limits import Limits
from core.rules import (
    CodecError,
    DecodeContext,
    Rejected,
    TimeWindow,
    id_problem,
    kind,
    metric_name,
    parse_json,
    point_time_us,
    point_value,
)
from core.tasks import cancel_and_wait
from core.types import DeadLetter, Point

log = logging.getLogger("bridge.api.ingest")


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one reading or point of a body."""

    reading: int | None  # index in the batch; None for the whole body
    metric: str | None
    reason: str  # the codecs' reason labels: bad_value, time_in_future, ...
    detail: str


class BadBody(ApiError):
    """The body is not readings at all (malformed JSON, wrong shape, too big)."""

    def __init__(self, reason: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status = reason, detail, status


@dataclass(slots=True)
class Parsed:
    points: list[Point] = field(default_factory=list)
    sites: dict[str, str | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def parse_body(body: bytes, limits: Limits, batch: bool, received_us: int) -> Parsed:
    """The body's points, or the problems with it. Raises BadBody."""
    if len(body) > limits.max_payload_bytes:
        raise BadBody(
            "payload_too_large",
            f"{len(body)} bytes, more than the {limits.max_payload_bytes} allowed",
            413,
        )
    try:
        doc = parse_json(body, limits)
    except CodecError as exc:
        raise BadBody(exc.reason, exc.detail) from None
    if batch:
        readings = doc.get("readings") if type(doc) is dict else None
        if type(readings) is not list:
            raise BadBody("bad_shape", 'expected {"readings": [...]}')
    else:
        if type(doc) is not dict:
            raise BadBody("bad_shape", f"expected a reading object, got {kind(doc)}")
        readings = [doc]
    out = Parsed()
    count = 0
    window = TimeWindow.of(DecodeContext("", None, received_us, limits))  # needs no device
    for index, reading in enumerate(readings):
        where = index if batch else None
        if type(reading) is not dict:
            out.problems.append(
                Problem(where, None, "bad_shape", f"{kind(reading)}, not an object")
            )
            continue
        data = reading.get("data")
        if type(data) is not dict:
            out.problems.append(Problem(where, None, "bad_shape", 'no "data" object'))
            continue
        count += len(data)
        if count > limits.max_points_per_message:
            raise BadBody(
                "too_many_points",
                f"more than the {limits.max_points_per_message} points a request may hold",
                413,
            )
        _reading(reading, data, where=where, limits=limits, window=window, out=out)
    if not readings:
        out.problems.append(Problem(None, None, "no_points", "the body holds no readings"))
    return out


def _reading(
    reading: dict[str, object],
    data: dict[str, object],
    *,
    where: int | None,
    limits: Limits,
    window: TimeWindow,
    out: Parsed,
) -> None:
    device_id = reading.get("device_id")
    problem = id_problem(device_id, "device_id", limits.max_id_len)
    site_id = reading.get("site_id")
    if problem is None and site_id is not None:
        problem = id_problem(site_id, "site_id", limits.max_id_len)
    if problem is not None:
        out.problems.append(Problem(where, None, "bad_device", problem))
        return
    assert isinstance(device_id, str)
    try:
        time_us = point_time_us(reading.get("timestamp"), window)
    except Rejected as exc:
        out.problems.append(Problem(where, None, exc.reject.reason, exc.reject.detail))
        return
    if not data:
        out.problems.append(Problem(where, None, "no_points", '"data" is empty'))
    for name, raw in data.items():
        try:
            metric = metric_name(name, limits.max_metric_len)
            value = point_value(raw, metric)
        except Rejected as exc:
            out.problems.append(
                Problem(where, str(name)[:80], exc.reject.reason, exc.reject.detail)
            )
            continue
        out.points.append(Point(time_us, device_id, metric, value))
    out.sites[device_id] = site_id if isinstance(site_id, str) else out.sites.get(device_id)


def refusal(letters: list[DeadLetter]) -> dict[str, object]:
    """The part of a submit's answer that names the points the database
    refused for good (dead-lettered; sending them again fails again)."""
    if not letters:
        return {}
    return {
        "dead_lettered": [
            {"point": d.topic, "reason": d.reason, "detail": d.detail} for d in letters
        ]
    }


def _fail(requests: list[_Request], exc: Exception) -> None:
    for request in requests:
        if not request.done.done():
            request.done.set_exception(exc)


class Unavailable(ApiError):
    """The points could not be committed now; the client should retry."""


@dataclass(slots=True)
class _Request:
    points: list[Point]
    sites: dict[str, str | None]
    done: asyncio.Future[list[DeadLetter]]
    arrived: float = field(default_factory=time.monotonic)


class IngestWriter:
    """Commits the points of concurrent requests together, in few transactions,
    through the committer the MQTT pipeline uses (bridge.commit), with retry
    off: a request is answered after its commit, or fails at once when the
    database is unavailable and its client retries."""

    def __init__(
        self,
        db: TimescaleSink,
        cache: CacheWriter | None,
        metrics: CommitMetrics | None = None,
        writers: int = 2,
        max_points: int = 20_000,
    ) -> None:
        self._writers = writers
        self._max_points = max_points
        self._waiting: deque[_Request] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._feed = None if cache is None else CacheFeed(cache, max_pending=64)
        self._committer = Committer(
            db,
            metrics or CommitMetrics(CollectorRegistry()),
            retry=False,
            cache=None if self._feed is None else self._feed.put,
        )

    async def __aenter__(self) -> IngestWriter:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"ingest-{i}")
            for i in range(self._writers)
        ]
        if self._feed is not None:
            self._tasks.append(asyncio.create_task(self._feed.run(), name="ingest-cache"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._tasks)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("ingest task %s had failed: %r", task.get_name(), task.exception())
        _fail(list(self._waiting), Unavailable("the API is shutting down"))

    async def submit(
        self, points: list[Point], sites: dict[str, str | None], timeout: float
    ) -> list[DeadLetter]:
        """Waits until the points are committed; returns the dead letters of
        those the database refused for good (stored in rejected_messages, as
        the MQTT pipeline stores them), usually none.
        Raises Unavailable (the database is down, or slower than ``timeout``)."""
        if not points:
            return []
        request = _Request(points, sites, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(request.done)
        except TimeoutError:
            raise Unavailable(
                f"not committed within {timeout:g} s; the database is slow or down. The "
                "points may still be stored; sending them again is safe (duplicates are ignored)"
            ) from None

    async def _write_loop(self) -> None:
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            taken = self._take()
            batch = Batch(opened=taken[0].arrived)
            for request in taken:
                batch.points.extend(request.points)
                batch.sites.update(request.sites)
            try:
                result = await self._committer.commit(batch)
            except TransientDbError as exc:
                _fail(taken, Unavailable(str(exc)))
                continue
            except Exception as exc:  # a bug of ours: fail these requests, keep serving
                log.exception("ingest write failed")
                _fail(taken, exc)
                continue
            refused = dict(result.refused)
            for request in taken:
                if not request.done.done():
                    letters = (
                        [refused[p] for p in request.points if p in refused] if refused else []
                    )
                    request.done.set_result(letters)

    def _take(self) -> list[_Request]:
        """The waiting requests, oldest first, up to about max_points points."""
        taken: list[_Request] = []
        size = 0
        while self._waiting:
            if taken and size + len(self._waiting[0].points) > self._max_points:
                break
            request = self._waiting.popleft()
            taken.append(request)
            size += len(request.points)
        return taken
