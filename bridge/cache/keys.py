"""The cache's key layout and the texts stored in it: the wire format that
write.lua produces, CacheReader parses, and existing data and the benches
depend on. Change nothing here without migrating them.

Keys (``P`` is the prefix, ``bridge:`` by default)::

    P latest:{device_id}           HASH  metric -> "<time_us> <value>"
    P recent:{device_id}|{metric}  ZSET  score time_us, member "<time_us>:<value>"
    P devices                      ZSET  score max time_us, member device_id
    P complete_since               STRING  a time_us, no TTL

write.lua builds the same names from the prefix itself (it computes its keys,
which is why the cache needs a single Redis, not Redis Cluster).

``<value>`` is ``repr(float)`` (the shortest text that reads back as the same
float: 70.2 -> "70.2"), made in Python and stored unchanged. Redis 7.0's Lua
would print 70.2 as 70.200000000000003, so numbers never pass through Lua as
numbers on their way into a key; times travel as decimal text as well.

Device ids and metrics may contain ":" but never "|" (core.topics.ID and the
codecs' METRIC_NAME), so "|" separates them in a recent key and no two series
ever share one; a member splits at its first ":" because a time has none.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "bridge:"


# A value as it is stored: the shortest text that reads back as the same
# float. The builtin itself, not a wrapper: the writer calls it per point.
value_text = repr


def parse_latest(text: str) -> tuple[int, str]:
    """A latest field, "<time_us> <value>" -> (time_us, value text)."""
    time_us, value = text.split(" ", 1)
    return int(time_us), value


def parse_recent(member: str) -> tuple[int, str]:
    """A recent member, "<time_us>:<value>" -> (time_us, value text)."""
    time_us, value = member.split(":", 1)
    return int(time_us), value


@dataclass(frozen=True, slots=True)
class Keys:
    """The names of the cache's keys under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def latest(self, device_id: str) -> str:
        return f"{self.prefix}latest:{device_id}"

    def recent(self, device_id: str, metric: str) -> str:
        return f"{self.prefix}recent:{device_id}|{metric}"

    @property
    def devices(self) -> str:
        return f"{self.prefix}devices"

    @property
    def complete_since(self) -> str:
        return f"{self.prefix}complete_since"
