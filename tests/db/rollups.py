"""Reference rollups: a plain GROUP BY over the raw rows, to compare against."""

from __future__ import annotations

import datetime as dt
import math

import asyncpg

REFERENCE = """
SELECT date_bin($1::interval, time, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket,
       device_id, metric, avg(value) AS avg, sum(value) AS sum, min(value) AS min,
       max(value) AS max, count(*) AS count,
       (array_agg(value ORDER BY time))[1] AS first,
       (array_agg(value ORDER BY time DESC))[1] AS last
FROM telemetry GROUP BY 1, 2, 3 ORDER BY 2, 3, 1
"""
COLUMNS = ("bucket", "device_id", "metric", "avg", "sum", "min", "max", "count", "first", "last")


async def rollup_rows(conn: asyncpg.Connection, table: str) -> list[tuple[object, ...]]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY device_id, metric, bucket"
    return [tuple(r) for r in await conn.fetch(sql)]


async def reference_rows(conn: asyncpg.Connection, width: dt.timedelta) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await conn.fetch(REFERENCE, width)]


def assert_same(actual: list[tuple[object, ...]], expected: list[tuple[object, ...]]) -> None:
    """Equal row by row; sums and averages within float rounding."""
    assert len(actual) == len(expected), (len(actual), len(expected))
    for got, want in zip(actual, expected, strict=True):
        for name, g, w in zip(COLUMNS, got, want, strict=True):
            if isinstance(w, float) and isinstance(g, float):
                assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-6), (name, got, want)
            else:
                assert g == w, (name, got, want)


async def assert_rollups_match_raw(conn: asyncpg.Connection) -> None:
    """telemetry_1m and telemetry_1h equal a GROUP BY over the raw rows."""
    for table, width in (
        ("telemetry_1m", dt.timedelta(minutes=1)),
        ("telemetry_1h", dt.timedelta(hours=1)),
    ):
        assert_same(await rollup_rows(conn, table), await reference_rows(conn, width))
