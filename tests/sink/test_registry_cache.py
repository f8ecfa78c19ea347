"""The sink's registry cache: one registry update per device every few seconds."""

from __future__ import annotations

import pytest

from bridge.sink import timescale
from bridge.sink.timescale import RegistryCache


def test_recently_refreshed_devices_are_skipped_until_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(timescale.time, "monotonic", lambda: now[0])
    cache = RegistryCache()
    first = cache.stale({"a": "s1", "b": None})
    assert first == {"a": "s1", "b": None}
    cache.refreshed(first)
    assert cache.stale({"a": "s1", "b": None}) == {}
    assert cache.stale({"a": "s2"}) == {"a": "s2"}  # a new site is news
    assert cache.stale({"a": None}) == {}  # no site says nothing new
    now[0] += RegistryCache.REFRESH_S + 0.1
    assert cache.stale({"a": "s1", "b": None}) == {"a": "s1", "b": None}


def test_the_cache_forgets_everything_each_period_and_holds_at_most_max_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(timescale.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(RegistryCache, "MAX_DEVICES", 100)
    cache = RegistryCache()
    cache.refreshed({f"old-{i}": None for i in range(60)})
    now[0] += RegistryCache.REFRESH_S / 2
    cache.refreshed(cache.stale({f"new-{i}": None for i in range(30)}))
    assert cache.stale({"old-0": None, "new-0": None}) == {}  # both this period
    now[0] += RegistryCache.REFRESH_S / 2  # the period ends: all forgotten, even new-0
    assert cache.stale({"old-0": None, "new-0": "s"}) == {"old-0": None, "new-0": "s"}
    assert cache._seen == {}
    cache.refreshed({f"flood-{i}": None for i in range(90)})
    cache.refreshed({"one-more": None, "and-another": None, **{f"x-{i}": None for i in range(9)}})
    assert set(cache._seen) == {"one-more", "and-another", *(f"x-{i}" for i in range(9))}
    for n in range(0, 1000, 50):  # whatever arrives, it stays bounded
        cache.refreshed({f"y-{n + i}": None for i in range(50)})
        assert len(cache._seen) <= 100


def test_a_device_without_a_site_keeps_the_site_it_was_seen_with() -> None:
    cache = RegistryCache()
    cache.refreshed({"a": "s1"})
    cache.refreshed({"a": None})
    assert cache.stale({"a": "s1"}) == {}
