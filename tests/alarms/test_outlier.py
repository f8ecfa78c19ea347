"""The outlier score kept up sample by sample is exactly the plain formula's
read from the whole window, whatever the order the points come in: late,
repeated (a redelivery replaces its sample), dropped off the window or by
the sample cap, and across a restart from the stored state. Pure: no
services."""

from __future__ import annotations

import math
import statistics

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.alarms.evaluate import US, Engine, Series
from bridge.alarms.outlier import WindowValues, score
from bridge.alarms.rules import Outlier, parse_rule
from core.types import Point

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = (1, "pump-1", "temp")

values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 2.0, -3.0]),  # ties, and both zeros
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([1e200, -1e200, 5e-324]),  # a square that overflows, a subnormal
)
points = st.lists(
    st.tuples(st.integers(0, 90), values, st.sampled_from([False] * 7 + [True])),
    min_size=1,
    max_size=150,
)


def plain(rule: Outlier, samples: list[tuple[int, float]]) -> tuple[int, float, float] | None:
    """The score read from the window, one sample at a time."""
    t, v = samples[-1]
    others = [x for tx, x in samples[:-1] if tx >= t - int(rule.window_s * US)]
    if len(others) < rule.min_samples:
        return None
    if rule.method == "zscore":
        n = len(others)
        center = math.fsum(others) / n
        scale = math.sqrt(max(0.0, math.fsum([x * x for x in others]) / n - center * center))
    else:
        center = statistics.median(others)
        scale = 1.4826 * statistics.median(abs(x - center) for x in others)
    deviation = abs(v - center)
    return t, v, deviation / scale if scale > 0 else (0.0 if deviation == 0 else math.inf)


@PROPERTY
@given(
    method=st.sampled_from(["zscore", "mad"]),
    window_s=st.sampled_from([5, 30, 60]),
    min_samples=st.integers(3, 8),
    max_samples=st.integers(10, 60),
    stream=points,
)
def test_the_kept_score_is_the_plain_one_at_every_point(
    method: str,
    window_s: int,
    min_samples: int,
    max_samples: int,
    stream: list[tuple[int, float, bool]],
) -> None:
    spec = {"name": "r", "kind": "outlier", "method": method, "threshold": 3.0}
    rule = parse_rule(spec | {"window_s": window_s, "min_samples": min_samples})
    assert isinstance(rule, Outlier)
    e = Engine({1: rule}, max_samples=max_samples)
    accepted: set[int] = set()
    for t_s, v, restart in stream:
        late = e.too_late
        e.observe(Point(t_s * US, "pump-1", "temp", v), None, None, now_us=t_s * US)
        if e.too_late == late:
            accepted.add(t_s * US)
        s = e.series[KEY]
        if s.window is None:  # restored, and this point came too late to change it
            assert e.too_late > late
            continue
        assert_window_kept(s, accepted, window_s * US, min_samples + 1, max_samples)
        fresh = WindowValues(x for _, x in s.samples)
        assert (s.window.values, s.window.total, s.window.squares, s.window.huge) == (
            fresh.values,
            fresh.total,
            fresh.squares,
            fresh.huge,
        )
        expected = plain(rule, s.samples)
        assert score(rule.method, rule.window_s, rule.min_samples, s.samples, s.window) == expected
        if restart:  # the evaluator's restart: the state as stored, the window rebuilt
            e.series[KEY] = Series.load(orjson.loads(orjson.dumps(s.dump())))


def assert_window_kept(
    s: Series, accepted: set[int], keep_us: int, min_kept: int, most: int
) -> None:
    """In time order, at most ``most``, nothing older than the one sample
    just before the window unless ``min_kept`` asks for it, and that one
    kept unless the cap cut it."""
    times = [t for t, _ in s.samples]
    assert times == sorted(set(times))
    assert len(times) <= most
    horizon = s.newest_us - keep_us
    assert len(times) <= min_kept or times[1] >= horizon
    before = [t for t in accepted if t < horizon]
    if before and len(times) < most:
        assert times[0] <= max(before)


def test_a_long_window_is_judged_as_the_plain_formula_would() -> None:
    """600 samples (10 Hz over 60 s) with an outlier every 97th: each
    transition and score as read from the whole window."""
    for method in ("zscore", "mad"):
        rule = parse_rule(
            {"name": "r", "kind": "outlier", "method": method, "window_s": 60, "min_samples": 30}
        )
        assert isinstance(rule, Outlier)
        e = Engine({1: rule})
        raised = 0
        for k in range(3_000):
            t = k * US // 10
            v = 20.0 + math.sin(k / 7) + (15.0 if k % 97 == 96 else 0.0)
            out = e.observe(Point(t, "pump-1", "temp", v), None, None, now_us=t)
            s = e.series[KEY]
            assert s.window is not None
            assert score(method, 60, 30, s.samples, s.window) == plain(rule, s.samples)
            raised += sum(x.kind == "raised" for x in out)
        assert len(e.series[KEY].samples) == 602  # 60 s, both ends, and the one before
        assert raised == 3_000 // 97  # every spike, and nothing else
