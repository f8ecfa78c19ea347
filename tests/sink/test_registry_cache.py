"""The sink's registry cache: one registry update per device every few
seconds, in memory that does not grow with the fleet."""

from __future__ import annotations

import tracemalloc

import pytest

from bridge.sink import registry
from bridge.sink.registry import RegistryCache


def test_recently_refreshed_devices_are_skipped_until_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(registry.time, "monotonic", lambda: now[0])
    cache = RegistryCache()
    first = cache.stale({"a": "s1", "b": None})
    assert first == {"a": "s1", "b": None}
    cache.refreshed(first)
    assert cache.stale({"a": "s1", "b": None}) == {}
    assert cache.stale({"a": "s2"}) == {"a": "s2"}  # a new site is news
    assert cache.stale({"a": None}) == {}  # no site says nothing new
    assert cache.stale({"b": "s3"}) == {"b": "s3"}  # nor did b's first
    now[0] += RegistryCache.REFRESH_S + 0.1
    assert cache.stale({"a": "s1", "b": None}) == {"a": "s1", "b": None}


def test_the_cache_forgets_everything_each_period_and_holds_at_most_max_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(registry.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(RegistryCache, "MAX_DEVICES", 100)
    cache = RegistryCache()
    cache.refreshed({f"old-{i}": None for i in range(60)})
    now[0] += RegistryCache.REFRESH_S / 2
    cache.refreshed(cache.stale({f"new-{i}": None for i in range(30)}))
    assert cache.stale({"old-0": None, "new-0": None}) == {}  # both this period
    assert len(cache) == 90
    now[0] += RegistryCache.REFRESH_S / 2  # the period ends: all forgotten, even new-0
    assert cache.stale({"old-0": None, "new-0": "s"}) == {"old-0": None, "new-0": "s"}
    assert len(cache) == 0
    cache.refreshed({f"flood-{i}": None for i in range(90)})
    cache.refreshed({"one-more": None, "and-another": None, **{f"x-{i}": None for i in range(9)}})
    assert len(cache) == 11  # 90 + 11 > 100: the flood was forgotten first
    assert cache.stale({"one-more": None, "x-8": None}) == {}
    assert cache.stale({"flood-0": None}) == {"flood-0": None}
    for n in range(0, 1000, 50):  # whatever arrives, it stays bounded
        cache.refreshed(cache.stale({f"y-{n + i}": None for i in range(50)}))
        assert len(cache) <= 100
        assert cache.stale({f"y-{n + i}": None for i in range(50)}) == {}


def test_a_device_without_a_site_keeps_the_site_it_was_seen_with() -> None:
    cache = RegistryCache()
    cache.refreshed({"a": "s1"})
    cache.refreshed({"a": None})
    assert cache.stale({"a": "s1"}) == {}
    assert cache.stale({"a": "s2"}) == {"a": "s2"}


def test_a_fleet_of_100k_devices_costs_no_memory_beyond_the_fixed_tables() -> None:
    cache = RegistryCache()  # its tables are allocated here, before the count starts
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for start in range(0, 100_000, 1_000):
            sites = {f"device-{n:06d}": f"site-{n % 50}" for n in range(start, start + 1_000)}
            cache.refreshed(cache.stale(sites))
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache) == 100_000
    assert cache.stale({"device-000000": "site-0", "device-099999": "site-49"}) == {}
    assert cache.stale({"device-100000": "site-0"}) == {"device-100000": "site-0"}
    # A dict of the ids held ~10 MB here.
    assert after - before < 256 * 1024
