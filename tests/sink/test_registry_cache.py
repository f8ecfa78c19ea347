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


def test_the_cache_holds_at_most_max_devices_and_forgets_stale_ones_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(timescale.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(RegistryCache, "MAX_DEVICES", 100)
    cache = RegistryCache()
    cache.refreshed({f"old-{i}": None for i in range(60)})
    now[0] += RegistryCache.REFRESH_S + 0.1
    cache.refreshed({f"new-{i}": None for i in range(30)})
    cache.refreshed({f"more-{i}": None for i in range(30)})  # over 100: the stale 60 go
    assert len(cache._seen) == 60
    assert cache.stale({"new-0": None, "more-29": None, "old-0": None}) == {"old-0": None}
    cache.refreshed({f"flood-{i}": None for i in range(90)})  # all fresh, still over: emptied
    assert len(cache._seen) == 90
    for n in range(0, 1000, 50):  # whatever arrives, it stays bounded
        cache.refreshed({f"x-{n + i}": None for i in range(50)})
        assert len(cache._seen) <= 100
