"""min, max, avg, count and last of each series over a range, from the rollups.

The range [start, end) is cut into whole hours (from telemetry_1h), whole
minutes at its edges (telemetry_1m) and the ragged seconds at its very ends
(raw rows), so the figures are exact for any range while a day costs ~24
rows per series rather than thousands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import asyncpg

from bridge.api import store
from bridge.api.store import WIDTH_US, Bucket, Mode, Selection

MINUTE, HOUR = WIDTH_US["1m"], WIDTH_US["1h"]


@dataclass(slots=True)
class Summary:
    count: int
    min: float
    max: float
    sum: float
    last_us: int  # start of the bucket (or time of the point) holding the last value
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count


def _ceil(t: int, width: int) -> int:
    return -(-t // width) * width


def _floor(t: int, width: int) -> int:
    return t // width * width


Part = tuple[int, int, Literal["raw", "1m", "1h"]]


def parts(start_us: int, end_us: int) -> list[Part]:
    """[start, end) as ragged raw ends, whole minutes and whole hours, in time order."""
    m0, m1 = _ceil(start_us, MINUTE), _floor(end_us, MINUTE)
    h0, h1 = _ceil(start_us, HOUR), _floor(end_us, HOUR)
    if m0 >= m1:
        cut: list[Part] = [(start_us, end_us, "raw")]
    elif h0 >= h1:
        cut = [(start_us, m0, "raw"), (m0, m1, "1m"), (m1, end_us, "raw")]
    else:
        cut = [
            (start_us, m0, "raw"),
            (m0, h0, "1m"),
            (h0, h1, "1h"),
            (h1, m1, "1m"),
            (m1, end_us, "raw"),
        ]
    return [p for p in cut if p[1] > p[0]]


async def summarize(
    conn: asyncpg.Connection, mode: Mode, sel: Selection
) -> dict[tuple[str, str], Summary]:
    """(device_id, metric) -> its summary, for every series with points in range."""
    out: dict[tuple[str, str], Summary] = {}
    for lo, hi, source in parts(sel.start_us, sel.end_us):
        part = Selection(sel.device_ids, sel.metrics, lo, hi)
        if source == "raw":
            series = await store.raw_buckets(conn, "1m", part)
        else:
            series = await store.rollup(conn, mode, source, part)
        for key, buckets in series.items():  # parts in time order: the last seen is the last
            for b in buckets:
                _fold(out, key, b)
    return out


def _fold(out: dict[tuple[str, str], Summary], key: tuple[str, str], b: Bucket) -> None:
    s = out.get(key)
    if s is None:
        out[key] = Summary(b.count, b.min, b.max, b.sum, b.time_us, b.last)
        return
    s.count += b.count
    s.min = min(s.min, b.min)
    s.max = max(s.max, b.max)
    s.sum += b.sum
    if b.time_us >= s.last_us:
        s.last_us, s.last = b.time_us, b.last
