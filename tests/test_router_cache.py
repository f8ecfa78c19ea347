"""The router's topic cache: bounded, and when full it keeps what it holds
for a while instead of emptying at every new topic; every topic is routed
the same whether it is cached or not."""

from __future__ import annotations

import orjson
import pytest

from bridge.config import Settings
from bridge.router import Router

S = 1_000_000


def payload(i: int) -> bytes:
    return orjson.dumps({"timestamp": "2026-01-01T00:00:00Z", "data": {"pip": float(i)}})


def topics(n: int, first: int = 0) -> list[str]:
    return [f"telemetry/site-{i % 3}/dev-{i}" for i in range(first, first + n)]


def route_all(router: Router, names: list[str]) -> list[tuple[str | None, str | None, float]]:
    out = []
    for i, topic in enumerate(names):
        routed = router.route(topic, payload(i), 1_767_225_600 * S)
        assert not routed.dead_letters, routed.dead_letters
        (point,) = routed.points
        out.append((routed.device_id, routed.site_id, point.value))
    return out


def expected(names: list[str]) -> list[tuple[str | None, str | None, float]]:
    return [(t.split("/")[2], t.split("/")[1], float(i)) for i, t in enumerate(names)]


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> Router:
    monkeypatch.setattr(Router, "MAX_KNOWN_TOPICS", 8)
    settings = Settings.model_validate({})
    return Router(settings.mqtt.routes, settings.limits)


def test_a_full_cache_keeps_its_topics_and_routes_the_new_ones_uncached(router: Router) -> None:
    first = topics(8)
    assert route_all(router, first) == expected(first)
    more = topics(20, first=8)
    assert route_all(router, more) == expected(more)
    assert set(router._known) == set(first)  # kept, not emptied at every new topic
    assert route_all(router, first + more) == expected(first + more)  # cached or not, the same


def test_after_keep_full_s_the_cache_takes_topics_seen_now(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    route_all(router, topics(8))
    monkeypatch.setattr(Router, "KEEP_FULL_S", 0.0)
    now = topics(4, first=100)
    assert route_all(router, now) == expected(now)
    assert set(router._known) == set(now)  # emptied once, then filled with what is seen now
