"""Redis sink: the latest value and a recent window per device and metric.

Called after a batch is committed to the database, so Redis is a cache of
what PostgreSQL holds: losing it loses nothing, and a failed write is counted
by the caller and skipped, never retried into the ingest path.

Data model (``P`` is the prefix, ``bridge:`` by default):

    P latest:{device_id}           HASH  metric -> "<time_us> <value>"
    P recent:{device_id}|{metric}  ZSET  score time_us, member "<time_us>:<value>"
    P devices                      ZSET  score max time_us, member device_id

``<value>`` is ``repr(float)`` (the shortest text that reads back as the same
float: 70.2 -> "70.2"), made in Python and stored unchanged. Redis 7.0's Lua
would print 70.2 as 70.200000000000003, so numbers never pass through Lua as
numbers on their way into a key; times travel as decimal text as well.

Invariants, each holding after every ``write``:

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
- complete_since (``P complete_since``, a time_us as text, no TTL): every
  point committed to the database with a time at or after it is in the
  cache (once its writer's write has run). Writers push it forward, never
  back: past the points of a write that failed or was skipped
  (``note_lost``), past whatever a writer that just started may have left
  unwritten before it (its start plus ``future_skew_s``), and, when the key
  is missing because Redis lost its data, past anything that data held
  (``now_us + future_skew_s``). Readers serve a range from the cache only
  from that time on, so a range spanning the cache and the database has no
  gap.
- Every key a write changes gets a TTL of ``2 * window_s``, so the keys of
  a silent device disappear on their own. The latest hash is refreshed by
  every point of its device, so it outlives the device's recent keys.
- A ``write`` is one EVALSHA (batches above ``MAX_POINTS_PER_CALL`` are split
  in order), so each part is applied atomically and in one round trip. The
  script reads and writes keys it computes itself, so this needs a single
  Redis (or a replica set behind one primary), not Redis Cluster.
- Device ids and metrics may contain ":" but never "|" (core.topics.ID and
  the codecs' METRIC_NAME), so "|" separates them in a recent key and no two
  series ever share one.

Errors (the only one this module raises on purpose):

    BridgeError
    └── RedisUnavailable   Redis did not take the write or answer the read:
                           refused or lost connection, timeout, loading,
                           READONLY replica, OOM, or any other error reply
                           (the message names it). Count it and move on;
                           the next call tries again, reconnecting if needed.

A flushed script cache (NOSCRIPT, after a restart or SCRIPT FLUSH) is not an
error: the script is loaded again and the call retried once.

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

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar, NamedTuple, cast

import msgspec
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.config import mask_url
from bridge.errors import BridgeError
from core.types import Point

MAX_POINTS_PER_CALL = 10_000
"""A larger batch is sent as several EVALSHAs. Redis serves nothing else while
a script runs, and a point costs it up to ~7 us (one point per series per
batch, bench/bench_redis.py), so a call holds it for at most ~70 ms."""


class RedisUnavailable(BridgeError):
    """Redis cannot take this write (or answer this read) now. The cache misses
    this batch; count it and carry on with the next one."""


# The batch travels as one flat array, grouped in Python, times and values as text:
#   device, n, metric_1 .. metric_n, (n_points, (time, value) * n_points) * n, device, ...
# ARGV[1..6] are the prefix, the window cutoff (time_us), the TTL (ms), the
# devices cutoff (time_us), the writer's complete_since claim and the floor
# that applies when the key is missing (both time_us); the array is ARGV[7]
# as one blob (msgpack or JSON) or ARGV[7..] itself. Times stay text: a Lua
# number prints with 14 digits, fewer than a time_us has.
#
# The latest field of a metric is read first: every member of its recent key
# is at most that time (both are written together, latest never moves back and
# outlives recent), so a point newer than it cannot collide with a member and
# only older points pay for removing a member at their time. (A Redis that
# evicts keys under maxmemory may break this; then a correction can leave two
# members at one time, which is all it costs.)
_LUA = """
local call, tonumber, unpack, find, sub = redis.call, tonumber, unpack, string.find, string.sub
local prefix, cutoff, ttl, dcutoff = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cutoff_n, below_cutoff = tonumber(cutoff), '(' .. cutoff
local mkey, claim, floor = prefix .. 'complete_since', ARGV[5], ARGV[6]
local held = call('GET', mkey)
if not held then held = floor end
if tonumber(claim) > tonumber(held) then held = claim end
call('SET', mkey, held)
local a, i = __DECODE__
local n = #a
local STEP = 2000  -- arguments per call, well inside Lua's limit on unpack()

local function in_slices(cmd, key, opt, args)
  if #args <= STEP then
    if opt then call(cmd, key, opt, unpack(args)) else call(cmd, key, unpack(args)) end
    return
  end
  for s = 1, #args, STEP do
    local e = math.min(s + STEP - 1, #args)
    if opt then call(cmd, key, opt, unpack(args, s, e)) else call(cmd, key, unpack(args, s, e)) end
  end
end

local devs = {}
while i <= n do
  local d, nm = a[i], tonumber(a[i + 1])
  local m0 = i + 2
  i = m0 + nm
  local lkey = prefix .. 'latest:' .. d
  local cur = {}
  for s = 0, nm - 1, STEP do
    local part = call('HMGET', lkey, unpack(a, m0 + s, m0 + math.min(s + STEP, nm) - 1))
    for k = 1, #part do cur[s + k] = part[k] end
  end
  local h, dmax_n, dmax_s = {}, nil, nil
  for k = 1, nm do
    local m, np = a[m0 + k - 1], tonumber(a[i])
    i = i + 1
    local c, prev = cur[k], nil
    if c then prev = tonumber(sub(c, 1, find(c, ' ', 1, true) - 1)) end
    local rkey = prefix .. 'recent:' .. d .. '|' .. m
    local z, best_n, best_s = {}, prev, nil
    for _ = 1, np do
      local ts, v = a[i], a[i + 1]
      i = i + 2
      local t = tonumber(ts)
      if t >= cutoff_n then
        if prev and t <= prev then call('ZREMRANGEBYSCORE', rkey, ts, ts) end
        z[#z + 1] = ts
        z[#z + 1] = ts .. ':' .. v
      end
      if not best_n or t >= best_n then best_n, best_s = t, ts .. ' ' .. v end
      if not dmax_n or t > dmax_n then dmax_n, dmax_s = t, ts end
    end
    if #z > 0 then
      in_slices('ZADD', rkey, nil, z)
      call('ZREMRANGEBYSCORE', rkey, '-inf', below_cutoff)
      call('PEXPIRE', rkey, ttl)
    end
    if best_s then
      h[#h + 1] = m
      h[#h + 1] = best_s
    end
  end
  if #h > 0 then in_slices('HSET', lkey, nil, h) end
  call('PEXPIRE', lkey, ttl)
  devs[#devs + 1] = dmax_s
  devs[#devs + 1] = d
end
if #devs > 0 then
  local dkey = prefix .. 'devices'
  in_slices('ZADD', dkey, 'GT', devs)
  call('ZREMRANGEBYSCORE', dkey, '-inf', '(' .. dcutoff)
  call('PEXPIRE', dkey, ttl)
end
return n
"""


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
                append(repr(value))
    return out


class _Encoding(NamedTuple):
    lua_decode: str  # Lua expression list: the array, and the index of its first element
    pack: Callable[[list[str | int]], list[Any]]  # the array -> ARGV[7..]


_ENCODINGS: dict[str, _Encoding] = {
    "msgpack": _Encoding("cmsgpack.unpack(ARGV[7]), 1", lambda a: [msgspec.msgpack.encode(a)]),
    "json": _Encoding("cjson.decode(ARGV[7]), 1", lambda a: [orjson.dumps(a)]),
    "argv": _Encoding("ARGV, 7", lambda a: a),
}


class RedisSink:
    """Writes committed batches to Redis; reads them back for the API.

    Use as ``async with RedisSink(url) as sink``. Entering creates the client
    but does not connect, so it succeeds while Redis is down; each call
    connects as needed, so a Redis that comes back is used again without a
    new sink. Every call is bounded by about ``timeout_s`` and raises
    ``RedisUnavailable`` when Redis cannot serve it.
    """

    _encoding: ClassVar[str] = "msgpack"  # chosen by bench/bench_redis.py

    def __init__(
        self,
        url: str,
        *,
        window_s: int = 900,
        prefix: str = "bridge:",
        timeout_s: float = 2.0,
        future_skew_s: float = 300.0,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.url = url
        self.window_s = window_s
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._skew_us = int(future_skew_s * 1_000_000)
        # What this writer cannot vouch for: a process that died before us may
        # have committed batches it never cached, timed up to now + the skew.
        self._lost_upto_us = time.time_ns() // 1000 + self._skew_us
        encoding = _ENCODINGS[self._encoding]
        self._pack = encoding.pack
        self._script = _LUA.replace("__DECODE__", encoding.lua_decode)
        self._sha = hashlib.sha1(self._script.encode(), usedforsecurity=False).hexdigest()
        self._client: aioredis.Redis | None = None

    async def __aenter__(self) -> RedisSink:
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            # No retries inside redis-py: a failed batch is the caller's to count.
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,  # so the casts on replies below hold
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("use RedisSink inside 'async with'")
        return self._client

    async def write(self, points: Sequence[Point], now_us: int) -> None:
        """Apply a committed batch: one EVALSHA (per ``MAX_POINTS_PER_CALL``
        points). Raises RedisUnavailable; never takes much longer than
        ``timeout_s`` in all."""
        if not points:
            return
        window_us = self.window_s * 1_000_000
        claim = self._lost_upto_us
        head = [
            self.prefix,
            str(now_us - window_us),
            str(2 * self.window_s * 1000),
            str(now_us - 2 * window_us),
            str(claim),
            str(now_us + self._skew_us),
        ]
        try:
            async with self._guard("write to"):
                for start in range(0, len(points), MAX_POINTS_PER_CALL):
                    args = head + self._pack(_group(points[start : start + MAX_POINTS_PER_CALL]))
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

    async def complete_since(self) -> int | None:
        """The time_us from which the cache holds every committed point, or
        None when no writer has vouched for it since Redis last lost its data."""
        async with self._guard("read from"):
            raw = await self._redis.get(f"{self.prefix}complete_since")
        return None if raw is None else int(cast("str", raw))

    async def _evalsha(self, args: list[Any]) -> None:
        redis = self._redis
        try:
            await redis.evalsha(self._sha, 0, *args)
        except NoScriptError:
            # Script cache flushed (restart, SCRIPT FLUSH, failover): load, retry once.
            self._sha = await redis.script_load(self._script)
            await redis.evalsha(self._sha, 0, *args)

    async def latest(self, device_id: str) -> dict[str, tuple[int, str]]:
        """metric -> (time_us, value text) of the newest point of each metric."""
        async with self._guard("read from"):
            raw = cast(
                "dict[str, str]", await self._redis.hgetall(f"{self.prefix}latest:{device_id}")
            )
        out: dict[str, tuple[int, str]] = {}
        for metric, text in raw.items():
            time_us, value = text.split(" ", 1)
            out[metric] = (int(time_us), value)
        return out

    async def recent(
        self, device_id: str, metric: str, start_us: int, end_us: int
    ) -> list[tuple[int, str]]:
        """(time_us, value text) with start_us <= time_us <= end_us, ascending."""
        key = f"{self.prefix}recent:{device_id}|{metric}"
        async with self._guard("read from"):
            members = cast(
                "list[str]", await self._redis.zrange(key, start_us, end_us, byscore=True)
            )
        out: list[tuple[int, str]] = []
        for member in members:
            time_us, value = member.split(":", 1)
            out.append((int(time_us), value))
        return out

    async def devices(self) -> dict[str, int]:
        """device_id -> time_us of its newest point in the cache."""
        async with self._guard("read from"):
            pairs = cast(
                "list[tuple[str, float]]",
                await self._redis.zrange(f"{self.prefix}devices", 0, -1, withscores=True),
            )
        return {device_id: int(score) for device_id, score in pairs}

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        """Bounds the block by ``timeout_s`` and turns redis-py's exceptions
        into RedisUnavailable with a message that says what to do."""
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except (TimeoutError, RedisError) as exc:
            raise RedisUnavailable(
                f"could not {what} Redis at {mask_url(self.url)}: {self._hint(exc)}"
            ) from exc

    def _hint(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError | RedisTimeoutError):
            return (
                f"no answer within {self.timeout_s:g} s; Redis is overloaded, blocked by a "
                "long command, or unreachable: check it and the network"
            )
        hint = next(hint for cls, hint in _HINTS if isinstance(exc, cls))
        return hint.format(exc=str(exc).rstrip("."))


# What to do about each redis-py exception; the first class that matches wins.
_HINTS: tuple[tuple[type[Exception], str], ...] = (
    (BusyLoadingError, "it is loading its data after a restart; later batches will get through"),
    (AuthenticationError, "{exc}; fix the user or password in redis.url"),
    (ConnectionError, "{exc}; start Redis or fix redis.url"),
    (ReadOnlyError, "it is a read-only replica; point redis.url at the primary"),
    (OutOfMemoryError, "it is out of memory; raise its maxmemory or give it an eviction policy"),
    (Exception, "it answered with an error: {exc}"),
)
