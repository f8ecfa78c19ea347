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
