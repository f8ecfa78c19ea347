"""What the API reads from PostgreSQL: the registry, raw rows, rollups and
string values (telemetry_text).

Times are µs since the epoch in and out, as everywhere in the bridge. Rollup
rows come from ``telemetry_1m`` / ``telemetry_1h``. With TimescaleDB those
are real-time continuous aggregates, complete up to now. In plain mode the
rollup tables lag until ``bridge_refresh_rollups()`` runs (every
``database.maintain_interval_s``); the hours it has not refreshed yet are
listed in ``telemetry_rollup_pending``, and for them the rows are computed
from the raw table here, so both modes answer the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, TypeVar

import asyncpg

T = TypeVar("T")
Mode = Literal["timescaledb", "plain"]
Resolution = Literal["raw", "1m", "1h"]
WIDTH_US: dict[Resolution, int] = {"raw": 0, "1m": 60_000_000, "1h": 3_600_000_000}
_TABLE = {"1m": "telemetry_1m", "1h": "telemetry_1h"}
_UNIT = {"1m": "minute", "1h": "hour"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SLICE = 400  # rows or points handled between two yields to the event loop (~0.3 ms)


async def slices(items: list[T]) -> AsyncIterator[list[T]]:
    """``items`` SLICE at a time, yielding to the event loop in between. The
    API answers every request on one event loop: a day of 1-minute buckets
    for 3 metrics is ~4,300 rows and several ms of CPU, and without the
    yields every request behind it (a submit, with its 10 ms goal) waited
    that long at each of its own awaits (bench/bench_api.py)."""
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)
        yield items[start : start + SLICE]


def to_dt(time_us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=time_us)


def to_us(moment: dt.datetime) -> int:
    d = moment - _EPOCH  # the fields, not timedelta // timedelta: a third of the cost
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    site_id: str | None
    device_type: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime | None
    metadata: str  # JSON text, as stored
    lifecycle: str | None = None  # online/offline from Sparkplug births and deaths


@dataclass(slots=True)
class Bucket:
    """One rollup row; ``time_us`` is the bucket's start. Not frozen: a series
    holds thousands, and a frozen dataclass's __init__ costs four times as
    much per row. Treat it as read-only."""

    time_us: int
    avg: float
    min: float
    max: float
    count: int
    sum: float
    first: float
    last: float


_DEVICE_COLUMNS = (
    "device_id, site_id, device_type, first_seen, last_seen, metadata::text, lifecycle"
)


def _device(row: asyncpg.Record) -> Device:
    return Device(*row)


async def devices(
    conn: asyncpg.Connection,
    *,
    site: str | None,
    device_type: str | None,
    online: bool | None,
    online_after_s: float,
    after: str | None,
    limit: int,
) -> list[Device]:
    """A page of the registry in device_id order, after the cursor ``after``."""
    where, args = [], []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if site is not None:
        where.append(f"site_id = {arg(site)}")
    if device_type is not None:
        where.append(f"device_type = {arg(device_type)}")
    if online is not None:
        fresh = f"last_seen >= now() - {arg(dt.timedelta(seconds=online_after_s))}::interval"
        derived = fresh if online else f"(last_seen IS NULL OR NOT {fresh})"
        wanted = "'online'" if online else "'offline'"
        # A Sparkplug device's state is what its births and deaths said.
        where.append(f"(CASE WHEN lifecycle IS NULL THEN {derived} ELSE lifecycle = {wanted} END)")
    if after is not None:
        where.append(f"device_id > {arg(after)}")
    sql = f"SELECT {_DEVICE_COLUMNS} FROM devices"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY device_id LIMIT {arg(limit)}"
    return [_device(r) for r in await conn.fetch(sql, *args)]


async def device(conn: asyncpg.Connection, device_id: str) -> Device | None:
    row = await conn.fetchrow(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = $1", device_id
    )
    return None if row is None else _device(row)


async def latest(
    conn: asyncpg.Connection, device_id: str, since_us: int
) -> dict[str, tuple[int, float]]:
    """metric -> (time_us, value) of the newest point at or after ``since_us``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (metric) metric, time, value FROM telemetry "
        "WHERE device_id = $1 AND time >= $2 ORDER BY metric, time DESC",
        device_id,
        to_dt(since_us),
    )
    return {r["metric"]: (to_us(r["time"]), r["value"]) for r in rows}


async def latest_texts(
    conn: asyncpg.Connection, device_id: str, since_us: int
) -> dict[str, tuple[int, str]]:
    """metric -> (time_us, text) of the newest string value at or after ``since_us``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (metric) metric, time, text FROM telemetry_text "
        "WHERE device_id = $1 AND time >= $2 ORDER BY metric, time DESC",
        device_id,
        to_dt(since_us),
    )
    return {r["metric"]: (to_us(r["time"]), r["text"]) for r in rows}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which series, over which time: [start_us, end_us). ``None`` for devices
    or metrics means all of them."""

    device_ids: list[str] | None
    metrics: list[str] | None
    start_us: int
    end_us: int

    def where(self, time_column: str) -> tuple[str, list[object]]:
        """A WHERE clause over ``time_column`` and its arguments, $1 and $2 the bounds.

        One device (or metric) is ``= $n``, several ``= ANY($n)``. asyncpg
        prepares every statement, and after five runs PostgreSQL may switch
        to a generic plan, which cannot see how many ids the array holds: for
        ``device_id = ANY($3)`` it chose the rollup's time index and filtered
        every device's rows (60 ms for one device's day at 100 devices, ~10x
        that at 1000; bench/bench_api.py). ``= $3`` keeps the (device_id,
        time) index in the generic plan too."""
        args: list[object] = [to_dt(self.start_us), to_dt(self.end_us)]
        sql = f"{time_column} >= $1 AND {time_column} < $2"
        for column, values in (("device_id", self.device_ids), ("metric", self.metrics)):
            if values is None:
                continue
            if len(values) == 1:
                args.append(values[0])
                sql += f" AND {column} = ${len(args)}"
            else:
                args.append(values)
                sql += f" AND {column} = ANY(${len(args)})"
        return sql, args


Series = dict[tuple[str, str], list[Bucket]]  # (device_id, metric) -> buckets, ascending


async def raw(
    conn: asyncpg.Connection, sel: Selection, limit: int
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(device_id, metric) -> [(time_us, value)], ascending; at most ``limit`` rows in all."""
    where, args = sel.where("time")
    sql = (
        f"SELECT device_id, metric, time, value FROM telemetry WHERE {where} "
        f"ORDER BY device_id, metric, time LIMIT ${len(args) + 1}"
    )
    rows = await conn.fetch(sql, *args, limit)
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    async for part in slices(rows):
        for r in part:
            out.setdefault((r[0], r[1]), []).append((to_us(r[2]), r[3]))
    return out


async def texts(
    conn: asyncpg.Connection, sel: Selection, limit: int
) -> tuple[dict[str, list[tuple[int, str]]], bool]:
    """metric -> [(time_us, text)], ascending, of one device (``sel.device_ids``),
    at most ``limit`` rows in all; and whether more lie in the selection."""
    where, args = sel.where("time")
    sql = (
        f"SELECT metric, time, text FROM telemetry_text WHERE {where} "
        f"ORDER BY metric, time LIMIT ${len(args) + 1}"
    )
    rows = await conn.fetch(sql, *args, limit + 1)
    more = len(rows) > limit
    out: dict[str, list[tuple[int, str]]] = {}
    async for part in slices(rows[:limit]):
        for r in part:
            out.setdefault(r[0], []).append((to_us(r[1]), r[2]))
    return out, more


_AGGREGATES = (
    "avg(value), min(value), max(value), count(*), sum(value), "
    "(array_agg(value ORDER BY time))[1], (array_agg(value ORDER BY time DESC))[1]"
)
_BUCKET_COLUMNS = "avg, min, max, count, sum, first, last"


def _rollup_sql(
    mode: Mode,
    resolution: Literal["1m", "1h"],
    sel: Selection,
    *,
    keys: str,
    bucket: str,
    columns: str,
    aggregates: str,
) -> tuple[str, list[object]]:
    """SELECT {keys}, {bucket}, {columns} from the rollup table, where {bucket}
    is a template with {} for the bucket start. In plain mode the hours not
    yet refreshed into the rollup tables are computed from raw rows instead
    ({aggregates} over ``value``, grouped by {keys} and the bucket)."""
    table, unit = _TABLE[resolution], _UNIT[resolution]
    where, args = sel.where("bucket")
    if mode == "timescaledb":
        return (
            f"SELECT {keys}, {bucket.format('bucket')}, {columns} FROM {table} WHERE {where}",
            args,
        )
    raw_where, _ = sel.where("time")
    raw_bucket = bucket.format(f"date_trunc('{unit}', time, 'UTC')")
    sql = f"""
WITH pending AS (
    SELECT date_trunc('hour', lo, 'UTC') AS lo,
           date_trunc('hour', hi, 'UTC') + INTERVAL '1 hour' AS hi
    FROM telemetry_rollup_pending WHERE hi >= $1 AND lo < $2
)
SELECT {keys}, {bucket.format("r.bucket")}, {columns} FROM {table} r
WHERE {where} AND NOT EXISTS (SELECT 1 FROM pending p WHERE r.bucket >= p.lo AND r.bucket < p.hi)
UNION ALL
SELECT {keys}, {raw_bucket}, {aggregates}
FROM telemetry t
WHERE {raw_where} AND EXISTS (SELECT 1 FROM pending p WHERE t.time >= p.lo AND t.time < p.hi)
GROUP BY {keys}, {raw_bucket}"""
    return sql, args


async def rollup(
    conn: asyncpg.Connection, mode: Mode, resolution: Literal["1m", "1h"], sel: Selection
) -> Series:
    """The buckets that start in the selection's range, whose bounds are on
    bucket boundaries."""
    sql, args = _rollup_sql(
        mode,
        resolution,
        sel,
        keys="device_id, metric",
        bucket="{}",
        columns=_BUCKET_COLUMNS,
        aggregates=_AGGREGATES,
    )
    return await _series(await conn.fetch(sql + " ORDER BY 1, 2, 3", *args))


# A rollup bucket as a series answer shows it: (start µs, avg, min, max, count).
SeriesBucket = tuple[int, float, float, float, int]


async def rollup_series(
    conn: asyncpg.Connection, mode: Mode, resolution: Literal["1m", "1h"], sel: Selection
) -> dict[str, list[SeriesBucket]]:
    """metric -> the buckets of ``rollup`` for one device, only the columns a
    series shows, bucket starts as integer µs computed by PostgreSQL. A day of
    1-minute buckets for 3 metrics is 4,320 rows: fetched this way they cost
    the API about a third of the CPU of datetimes and Bucket objects
    (bench/bench_api.py), and the API's single event loop serves every other
    request meanwhile. Starts are whole seconds, exact in float8."""
    assert sel.device_ids is not None
    assert len(sel.device_ids) == 1, "one device: rows are grouped by metric only"
    sql, args = _rollup_sql(
        mode,
        resolution,
        sel,
        keys="metric",
        bucket="date_part('epoch', {})::int8 * 1000000",
        columns="avg, min, max, count",
        aggregates="avg(value), min(value), max(value), count(*)",
    )
    rows = await conn.fetch(sql + " ORDER BY 1, 2", *args)
    out: dict[str, list[SeriesBucket]] = {}
    async for part in slices(rows):
        for r in part:
            out.setdefault(r[0], []).append(r[1:])
    return out


async def raw_buckets(
    conn: asyncpg.Connection, resolution: Literal["1m", "1h"], sel: Selection
) -> Series:
    """Buckets computed from the raw rows inside the range only: for the ragged
    edges of a summary, where a stored bucket would count points outside it."""
    where, args = sel.where("time")
    sql = (
        f"SELECT device_id, metric, date_trunc('{_UNIT[resolution]}', time, 'UTC'), "
        f"{_AGGREGATES} FROM telemetry WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return await _series(await conn.fetch(sql, *args))


async def _series(rows: list[asyncpg.Record]) -> Series:
    """Rows of (device_id, metric, bucket, avg, min, max, count, sum, first, last)."""
    out: Series = {}
    async for part in slices(rows):
        for r in part:
            out.setdefault((r[0], r[1]), []).append(
                Bucket(to_us(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9])
            )
    return out
