"""Each rule kind against scripted series on a controlled clock: when it
raises (exactly then, not a point before), when it clears, and that it does
not flap. Pure: no services."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.alarms.evaluate import US, Engine, Series, Transition
from bridge.alarms.rules import parse_rule
from core.types import Point

MIN = 60 * US


def engine(**spec: Any) -> Engine:
    spec.setdefault("name", "r")
    return Engine({1: parse_rule(spec)})


def feed(
    e: Engine, series: Iterable[tuple[float, float]], device: str = "pump-1", metric: str = "temp"
) -> list[tuple[str, float]]:
    """Feeds (seconds, value) points in the order given, the clock at each
    point's time; returns (transition, at seconds)."""
    out: list[Transition] = []
    for t_s, v in series:
        t = int(t_s * US)
        out += e.observe(Point(t, device, metric, v), "site-1", "pump", now_us=t)
    return [(x.kind, x.at_us / US) for x in out]


def test_threshold_fires_at_the_first_breaching_point_and_clears() -> None:
    e = engine(kind="threshold", direction="above", threshold=100)
    assert feed(e, [(0, 90), (1, 100), (2, 100.5), (3, 101), (4, 99)]) == [
        ("raised", 2),
        ("cleared", 4),
    ]


def test_threshold_duration_holds_for_the_whole_duration() -> None:
    e = engine(kind="threshold", direction="above", threshold=100, for_s=600)
    # breaching from t=0; a dip at 300 s restarts the run; raised 600 s after 360 s
    points = [(t, 101.0) for t in range(0, 300, 60)] + [(300, 99.0)]
    points += [(t, 105.0) for t in range(360, 1200, 60)]
    assert feed(e, points) == [("raised", 960)]
    assert e.series[(1, "pump-1", "temp")].peak == 105.0


def test_threshold_duration_not_one_point_before() -> None:
    e = engine(kind="threshold", direction="above", threshold=100, for_s=600)
    assert feed(e, [(t, 101.0) for t in range(0, 600, 60)]) == []  # 0..540 s: 540 s only
    assert feed(e, [(600, 101.0)]) == [("raised", 600)]


def test_threshold_count_in_a_row() -> None:
    e = engine(kind="threshold", direction="below", threshold=10, count=5)
    values = [5, 5, 5, 5, 20, 5, 5, 5, 5, 5, 5]
    assert feed(e, list(enumerate(values))) == [("raised", 9)]


def test_hysteresis_prevents_flapping() -> None:
    hovering = [(i, 100 + (0.5 if i % 2 else -0.5)) for i in range(40)]
    flappy = engine(kind="threshold", direction="above", threshold=100)
    assert len(feed(flappy, hovering)) == 39  # raised and cleared at every crossing
    steady = engine(kind="threshold", direction="above", threshold=100, clear_threshold=95)
    assert feed(steady, [*hovering, (40, 96), (41, 95)]) == [("raised", 1), ("cleared", 41)]


def test_late_points_judged_by_their_own_time() -> None:
    e = engine(kind="threshold", direction="above", threshold=100, for_s=120)
    # 0 and 120 s arrive first; 60 s (below the threshold) arrives late, and
    # breaks the run: nothing may fire at 120 s on account of 0 s.
    assert feed(e, [(0, 101), (60, 50)]) == []
    e = engine(kind="threshold", direction="above", threshold=100, for_s=120)
    assert feed(e, [(0, 101), (120, 101)]) == [("raised", 120)]
    e = engine(kind="threshold", direction="above", threshold=100, for_s=120)
    assert feed(e, [(120, 101), (0, 101)]) == [("raised", 120)]  # out of order: same alarm
    e = engine(kind="threshold", direction="above", threshold=100, for_s=120)
    assert feed(e, [(60, 50), (120, 101), (0, 101)]) == []  # 60 s breaks the run


def test_redelivered_points_change_nothing() -> None:
    e = engine(kind="threshold", direction="above", threshold=100, count=3)
    pts = [(0, 101), (1, 101)]
    assert feed(e, pts + pts + pts) == []
    assert feed(e, [(2, 101), (2, 101), (1, 101)]) == [("raised", 2)]


def test_rate_of_change_over_a_window() -> None:
    e = engine(kind="rate", direction="above", threshold=1.0, window_s=60, clear_threshold=0.5)
    steady = [(t, 20.0 + t * 0.1) for t in range(0, 120, 10)]  # 0.1/s
    assert feed(e, steady) == []
    # against the point 60 s before: 0.97/s at 130 s (not yet), 1.2/s at 140 s
    assert feed(e, [(120, 40.0), (130, 85.0)]) == []
    assert feed(e, [(140, 100.0)]) == [("raised", 140)]
    flat = [(t, 100.0) for t in range(150, 300, 10)]
    assert feed(e, flat) == [("cleared", 190)]


def test_stuck_sensor_after_n_minutes_then_clears_on_change() -> None:
    e = engine(kind="stuck", epsilon=0.01, for_s=300)
    noisy = [(t, 50 + (t % 7) * 0.1) for t in range(0, 100, 10)]
    assert feed(e, noisy) == []
    stuck = [(t, 42.0 + (0.005 if t % 20 else 0)) for t in range(100, 460, 10)]
    assert feed(e, stuck) == [("raised", 400)]
    assert feed(e, [(460, 42.5)]) == [("cleared", 460)]


def test_no_data_fires_for_a_silent_device_and_clears_when_it_returns() -> None:
    e = engine(kind="no_data", for_s=300)
    assert feed(e, [(0, 1.0), (10, 1.0)], metric="flow") == []
    assert feed(e, [(5, 1.0)], metric="temp") == []  # device-level: any metric
    assert e.tick(309 * US) == []
    assert [(x.kind, x.at_us / US) for x in e.tick(310 * US)] == [("raised", 310)]
    assert e.tick(900 * US) == []  # still one alarm
    # an old point from an edge spool does not clear: the device is still stale
    assert e.observe(Point(20 * US, "pump-1", "flow", 1.0), "site-1", "pump", now_us=905 * US) == []
    back = e.observe(Point(904 * US, "pump-1", "flow", 1.0), "site-1", "pump", now_us=905 * US)
    assert [(x.kind, x.at_us / US) for x in back] == [("cleared", 905)]


def test_outlier_needs_min_samples_then_fires_and_clears() -> None:
    e = engine(kind="outlier", method="zscore", threshold=4, window_s=600, min_samples=10)
    assert feed(e, [(0, 10.0), (1, 99.0)]) == []  # two samples: may not judge
    e = engine(kind="outlier", method="zscore", threshold=4, window_s=600, min_samples=10)
    base = [(t, 10.0 + (0.5 if t % 2 else -0.5)) for t in range(20)]
    assert feed(e, base) == []
    assert feed(e, [(20, 30.0)]) == [("raised", 20)]
    assert feed(e, [(21, 10.2)]) == [("cleared", 21)]


def test_outlier_mad_is_robust_to_the_outlier_itself() -> None:
    e = engine(kind="outlier", method="mad", threshold=5, window_s=600, min_samples=5)
    base = [(t, 10.0 + (t % 3) * 0.1) for t in range(10)]
    assert feed(e, [*base, (10, 11.0)]) == [("raised", 10)]


def test_selector_and_series_are_separate() -> None:
    e = engine(kind="threshold", direction="above", threshold=1, select={"site": "site-1"})
    assert feed(e, [(0, 5)], device="a") == [("raised", 0)]
    assert feed(e, [(0, 5)], device="b") == [("raised", 0)]
    assert e.observe(Point(0, "c", "temp", 5.0), "site-2", None, now_us=0) == []


def test_state_round_trips_and_stays_bounded() -> None:
    e = Engine(
        {1: parse_rule({"name": "r", "kind": "threshold", "direction": "above", "threshold": 1})},
        max_series=2,
        max_samples=50,
    )
    for i in range(3):
        e.observe(Point(0, f"d{i}", "m", 5.0), None, None, now_us=0)
    assert len(e.series) == 2
    assert e.refused_series == 1
    s = e.series[(1, "d0", "m")]
    assert Series.load(s.dump()).dump() == s.dump()
    w = engine(kind="stuck", for_s=10)
    feed(w, [(t / 10, 1.0) for t in range(10_000)])
    assert len(w.series[(1, "pump-1", "temp")].samples) <= 102


def test_a_window_cut_short_by_max_samples_cannot_fire_and_is_counted() -> None:
    spec = {"name": "r", "kind": "stuck", "for_s": 100}
    points = [(t, 7.0) for t in range(150)]  # one a second: 100 s need 101 samples
    cut = Engine({1: parse_rule(spec)}, max_samples=20)
    assert feed(cut, points) == []
    assert (cut.cut_short, cut.cut_rules) == (150 - 20, {1})
    whole = Engine({1: parse_rule(spec)}, max_samples=200)
    assert feed(whole, points) == [("raised", 100)]
    assert (whole.cut_short, whole.cut_rules) == (0, set())
