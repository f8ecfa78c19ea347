"""What the API reads from the cache: the latest values of a device, a
series' recent window, the devices index and complete_since.

What a reader may rely on (bridge.cache.writer keeps it):

- latest holds, per metric, the newest point ever written within the TTL,
  inside the window or not.
- recent holds at most one point per time, nothing older than the window
  at the last write to the key.
- complete_since: every point committed to the database with a time at or
  after it is in the cache. Serve a range from the cache only from that time
  on (and only inside the window), the rest from the database, and the two
  join with no gap (bridge.api.series does). None means no writer has
  vouched for the cache since Redis last lost its data: read it all from
  the database.

Values come back as the text they were stored as (bridge.cache.keys), so
the caller decides when to make a float of them. Every read raises
RedisUnavailable (bridge.cache.client) when Redis cannot answer; the caller
then reads from the database.
"""

from __future__ import annotations

from typing import cast

from bridge.cache.client import CacheClient
from bridge.cache.keys import parse_latest, parse_recent


class CacheReader(CacheClient):
    """Use as ``async with CacheReader(url) as reader``; see CacheClient for
    connecting and failing."""

    async def latest(self, device_id: str) -> dict[str, tuple[int, str]]:
        """metric -> (time_us, value text) of the newest point of each metric."""
        async with self._guard("read from"):
            raw = cast("dict[str, str]", await self._redis.hgetall(self.keys.latest(device_id)))
        return {metric: parse_latest(text) for metric, text in raw.items()}

    async def recent(
        self, device_id: str, metric: str, start_us: int, end_us: int
    ) -> list[tuple[int, str]]:
        """(time_us, value text) with start_us <= time_us <= end_us, ascending."""
        key = self.keys.recent(device_id, metric)
        async with self._guard("read from"):
            members = cast(
                "list[str]", await self._redis.zrange(key, start_us, end_us, byscore=True)
            )
        return [parse_recent(member) for member in members]

    async def devices(self) -> dict[str, int]:
        """device_id -> time_us of its newest point in the cache."""
        async with self._guard("read from"):
            pairs = cast(
                "list[tuple[str, float]]",
                await self._redis.zrange(self.keys.devices, 0, -1, withscores=True),
            )
        return {device_id: int(score) for device_id, score in pairs}

    async def complete_since(self) -> int | None:
        """The time_us from which the cache holds every committed point, or
        None when no writer has vouched for it since Redis last lost its data."""
        async with self._guard("read from"):
            raw = await self._redis.get(self.keys.complete_since)
        return None if raw is None else int(cast("str", raw))
