"""Committed batches into the cache: what the bridge and HTTP ingest write
(through bridge.cache.feed, in the background).

Invariants, each holding after every ``write`` (keys as in bridge.cache.keys):

- latest: the field of a metric holds the point with the greatest time ever
  written (within the TTL), whether or not it is inside the window. It moves
  only when a new time is >= the stored one, so redeliveries and older
  batches arriving late never move it back. At an equal time the later
  write wins.
- recent: at most one member per time (a later write at the same time
  replaces the earlier one, agreeing with latest); right after a write to the
  key, no member is older than ``now_us - window_s`` (the bound is inclusive:
  a point exactly at it stays). ``now_us`` is the caller's clock, never the
  Redis clock. A key that receives no writes is not trimmed; it expires.
- devices: the score of a device is the greatest point time seen (ZADD GT);
  devices whose newest point is older than ``now_us - 2 * window_s`` are
  removed on every write.
- complete_since: every point committed to the database with a time at or
  after it is in the cache (once its writer's write has run). Writers push it
  forward, never back: past the points of a write that failed or was skipped
  (``note_lost``) or left out of the window (``write(..., window=False)``),
  past whatever a writer that just started may have left unwritten before
  it (its start plus ``future_skew_s``), and, when the key
  is missing because Redis lost its data, past anything that data held
  (``now_us + future_skew_s``). bridge.cache.reader says what readers do
  with it.
- Every key a write changes gets a TTL of ``2 * window_s``, so the keys of
  a silent device disappear on their own. The latest hash is refreshed by
  every point of its device, so it outlives the device's recent keys.
- A ``write`` is one EVALSHA of write.lua (batches above
  ``MAX_POINTS_PER_CALL`` are split in order), so each part is applied
  atomically and in one round trip. The script reads and writes keys it
  computes itself, so this needs a single Redis (or a replica set behind one
  primary), not Redis Cluster.

A flushed script cache (NOSCRIPT, after a restart or SCRIPT FLUSH) is not an
error: the script is loaded again and the call retried once. Any other
failure is RedisUnavailable (bridge.cache.client).

Cost, measured by bench/bench_redis.py on 2 cores shared by everything (three
full runs): when each series has one point per batch (1000 devices x 3
metrics), the script runs about 4 Redis commands per point (ZADD, trim and
PEXPIRE per series; HMGET, HSET and PEXPIRE per device): 6-7 us of Redis CPU
and 1.3-1.8 us of Python per point, 85-135k points/s, 3.2-3.8x the naive
pipeline. Shipping and decoding the batch alone runs at 500-800k points/s, so
the commands are the cost (the PEXPIREs ~20% of it). With ~33 points per
series (messages of 100 readings): ~1.1 us of Redis CPU per point, 380-550k
points/s. The batch goes grouped by device and metric, as a msgpack blob:
ARGV costs ~4 us more per point in redis-py; JSON ties with msgpack and is
20% bigger; grouping in Lua instead saves ~0.6 us of Python per point but
costs Redis ~0.8 us more.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any, ClassVar, NamedTuple

import msgspec
import orjson
from redis.exceptions import NoScriptError

from bridge.cache.client import CacheClient
from bridge.cache.keys import DEFAULT_PREFIX, value_text
from bridge.errors import RedisUnavailable
from core.types import Point

LUA = files(__package__).joinpath("write.lua").read_text(encoding="utf-8")
"""write.lua as shipped, with its decode expression still to fill in."""

MAX_POINTS_PER_CALL = 10_000
"""A larger batch is sent as several EVALSHAs. Redis serves nothing else while
a script runs, and a point costs it up to ~7 us (one point per series per
batch, bench/bench_redis.py), so a call holds it for at most ~70 ms."""


_NO_WINDOW = 2**62
"""A window cutoff later than any point: the script then adds nothing to the
recent keys (and trims none), and updates only latest values and devices."""


def _group(points: Sequence[Point]) -> list[str | int]:
    """The batch as the flat array the script reads. At an equal time within
    one device and metric, the later point replaces the earlier."""
    by_device: dict[str, dict[str, dict[int, float]]] = {}
    for time_us, device_id, metric, value in points:
        metrics = by_device.get(device_id)
        if metrics is None:
            by_device[device_id] = {metric: {time_us: value}}
            continue
        series = metrics.get(metric)
        if series is None:
            metrics[metric] = {time_us: value}
        else:
            series[time_us] = value
    out: list[str | int] = []
    append = out.append
    for device_id, metrics in by_device.items():
        append(device_id)
        append(len(metrics))
        out.extend(metrics)
        for series in metrics.values():
            append(len(series))
            for time_us, value in series.items():
                append(str(time_us))
                append(value_text(value))
    return out


def _newest_per_series(points: Sequence[Point]) -> list[Point]:
    """Each series' point of greatest time (the later one at an equal time),
    before the batch is split into calls: a write of latest values costs
    Redis per series, whatever the points."""
    newest: dict[tuple[str, str], Point] = {}
    for point in points:
        key = (point.device_id, point.metric)
        held = newest.get(key)
        if held is None or point.time_us >= held.time_us:
            newest[key] = point
    return list(newest.values())


class _Encoding(NamedTuple):
    lua_decode: str  # Lua expression list: the array, and the index of its first element
    pack: Callable[[list[str | int]], list[Any]]  # the array -> ARGV[7..]


_ENCODINGS: dict[str, _Encoding] = {
    "msgpack": _Encoding("cmsgpack.unpack(ARGV[7]), 1", lambda a: [msgspec.msgpack.encode(a)]),
    "json": _Encoding("cjson.decode(ARGV[7]), 1", lambda a: [orjson.dumps(a)]),
    "argv": _Encoding("ARGV, 7", lambda a: a),
}


class CacheWriter(CacheClient):
    """Writes committed batches to the cache. Use as ``async with
    CacheWriter(url) as writer``; see CacheClient for connecting and
    failing."""

    _encoding: ClassVar[str] = "msgpack"  # chosen by bench/bench_redis.py

    def __init__(
        self,
        url: str,
        *,
        window_s: int = 900,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 2.0,
        future_skew_s: float = 300.0,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        super().__init__(url, prefix=prefix, timeout_s=timeout_s)
        self.window_s = window_s
        self._skew_us = int(future_skew_s * 1_000_000)
        # What this writer cannot vouch for: a process that died before us may
        # have committed batches it never cached, timed up to now + the skew.
        self._lost_upto_us = time.time_ns() // 1000 + self._skew_us
        encoding = _ENCODINGS[self._encoding]
        self._pack = encoding.pack
        self._script = LUA.replace("__DECODE__", encoding.lua_decode)
        self._sha = hashlib.sha1(self._script.encode(), usedforsecurity=False).hexdigest()

    async def write(self, points: Sequence[Point], now_us: int, *, window: bool = True) -> None:
        """Apply a committed batch: one EVALSHA (per ``MAX_POINTS_PER_CALL``
        points). ``window=False`` writes the latest values and devices only
        and moves complete_since past the batch, in the same call. Raises
        RedisUnavailable; never takes much longer than ``timeout_s`` in all."""
        if not points:
            return
        window_us = self.window_s * 1_000_000
        if not window:
            self.note_lost(points)
            points = _newest_per_series(points)
        claim = self._lost_upto_us
        head = [
            self.prefix,
            str(now_us - window_us if window else _NO_WINDOW),
            str(2 * self.window_s * 1000),
            str(now_us - 2 * window_us),
            str(claim),
            str(now_us + self._skew_us),
        ]
        try:
            async with self._guard("write to"):
                for start in range(0, len(points), MAX_POINTS_PER_CALL):
                    part = points[start : start + MAX_POINTS_PER_CALL]
                    args = head + self._pack(_group(part))
                    await self._evalsha(args)
        except RedisUnavailable:
            self.note_lost(points)
            raise
        if self._lost_upto_us == claim:  # else a loss was noted meanwhile: keep it for the next
            self._lost_upto_us = 0

    def note_lost(self, points: Sequence[Point]) -> None:
        """These committed points will not reach the cache (a failed write, or
        a batch the caller skipped): the next write moves complete_since past
        them."""
        if points:
            self._lost_upto_us = max(self._lost_upto_us, max(p.time_us for p in points) + 1)

    async def _evalsha(self, args: list[Any]) -> None:
        redis = self._redis
        try:
            await redis.evalsha(self._sha, 0, *args)
        except NoScriptError:
            # Script cache flushed (restart, SCRIPT FLUSH, failover): load, retry once.
            self._sha = await redis.script_load(self._script)
            await redis.evalsha(self._sha, 0, *args)
