"""What the API publishes when it ingests through the broker: messages the
bridge's codec reads back into exactly the submitted points, on the topics of
the bridge's own routes."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from bridge.api.publish import BrokerIngest, topics_for
from bridge.config import BrokerLogin, Route
from core.codec import CODECS, DecodeContext
from core.limits import Limits
from core.types import Point

NOW = time.time_ns() // 1000
DAY = 86_400_000_000

times = st.integers(NOW - 30 * DAY, NOW)
values = st.floats(allow_nan=False, allow_infinity=False)
metrics = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@given(st.lists(st.tuples(times, metrics, values), min_size=1, max_size=50))
def test_the_bridge_decodes_exactly_the_points_published(
    raw: list[tuple[int, str, float]],
) -> None:
    points = [Point(t, "dev-1", m, v) for t, m, v in raw]
    decoded = CODECS["seed_json"].decode(
        CODECS["seed_json"].encode([(p.time_us, p.metric, p.value) for p in points]),
        DecodeContext("dev-1", None, NOW, Limits()),
    )
    assert decoded.rejects == []
    first: dict[tuple[int, str], Point] = {}
    for p in points:
        first.setdefault((p.time_us, p.metric), p)  # a repeat: the first wins, as in the database
    assert sorted(decoded.points) == sorted(first.values())


def test_topics_come_from_the_first_seed_json_routes_without_a_metric() -> None:
    routes = [
        Route(topic="sensors/{device_id}/{metric}", codec="raw_value"),
        Route(topic="flat/{site_id}/{device_id}", codec="flat_json"),
        Route(topic="a/{site_id}/{device_id}", codec="seed_json"),
        Route(topic="b/{site_id}/{device_id}", codec="seed_json"),
        Route(topic="c/{device_id}", codec="seed_json"),
    ]
    assert topics_for(routes) == ("a/{site_id}/{device_id}", "c/{device_id}")
    assert topics_for(routes[:2]) == (None, None)


def test_a_reading_goes_to_the_route_that_carries_what_it_says() -> None:
    both = [Route(topic="t/{site_id}/{device_id}"), Route(topic="t/{device_id}")]
    ingest = BrokerIngest(BrokerLogin(), both, Limits(), client_id="x", timeout_s=1)
    assert ingest.topic("pump-1", "site-2") == "t/site-2/pump-1"
    assert ingest.topic("pump-1", None) == "t/pump-1"
    # A site with no {site_id} route would be lost on the way: no topic, the
    # API commits it itself; likewise no site with only a {site_id} route.
    only_device = BrokerIngest(BrokerLogin(), both[1:], Limits(), client_id="x", timeout_s=1)
    assert only_device.topic("pump-1", "site-2") is None
    only_site = BrokerIngest(BrokerLogin(), both[:1], Limits(), client_id="x", timeout_s=1)
    assert only_site.topic("pump-1", None) is None
