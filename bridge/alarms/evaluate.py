"""The evaluator: committed points and a clock in, alarm transitions out.

Pure code: no I/O, no wall clock (``now_us`` is passed in), so that every rule
kind is tested with scripted series (tests/alarms/test_evaluate.py).

Per (rule, series) it keeps a Series: the samples of the rule's window,
sorted by their own timestamps, and whether an alarm is open. Contracts:

  * Event time. Conditions are judged on the points' timestamps, never on
    arrival: a late or out-of-order point is inserted where its time puts it
    and the condition is judged again at the series' newest point. A point
    older than the window behind the newest cannot change any condition and
    is skipped (counted in ``too_late``). An alarm already raised is not
    taken back by a late point; it clears by its clear condition.
  * Idempotent. The state is a function of the set of samples: a point seen
    twice (a redelivery) replaces itself, so replaying the stream after a
    crash gives the same transitions.
  * One open alarm per (rule, series): a series raises only while closed
    and clears only while open.
  * Bounded: a series keeps its window (plus the one sample before it that
    rate and stuck rules measure from), at most ``max_samples``; at most
    ``max_series`` series are tracked, later ones are refused and counted.
    A window that needs more (a stuck rule over an hour at 10 Hz) is cut
    short, counted in ``cut_short`` and its rule named in ``cut_rules``.
  * No data is judged on the clock: ``tick(now_us)`` raises for a series
    whose newest point is ``for_s`` old, and the next point that is younger
    than that clears it.

Threshold duration and count hold on points: "over 100 for 10 min" raises
at the first point that is over 100 with every point of the last 10 minutes
over 100 as well (and the run of them starting at least 10 minutes earlier).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.alarms.outlier import WindowValues, score
from bridge.alarms.rules import AnyRule, NoData, Outlier, Rate, Stuck, Threshold
from core.types import Point

US = 1_000_000
SeriesKey = tuple[int, str, str]  # rule id, device_id, metric ('' for device-level)
Samples = list[tuple[int, float]]  # (time_us, value), in time order


@dataclass(slots=True, frozen=True)
class Transition:
    rule_id: int
    device_id: str
    metric: str
    site_id: str | None
    kind: Literal["raised", "cleared"]
    at_us: int
    value: float  # what the condition measured at the transition
    peak: float | None  # the worst value while it was open (on clear)


@dataclass(slots=True)
class Series:
    samples: Samples = field(default_factory=list)
    newest_us: int = -1
    open: bool = False
    alert_id: int | None = None  # set by the store once the alarm row exists
    since_us: int = 0
    peak: float | None = None
    peak_score: float = -math.inf
    site_id: str | None = None
    dirty: bool = True
    window: WindowValues | None = None  # an outlier rule's values, not stored

    def dump(self) -> dict[str, Any]:
        return {
            "s": self.samples,
            "n": self.newest_us,
            "o": self.open,
            "a": self.alert_id,
            "t": self.since_us,
            "p": self.peak,
            "ps": None if self.peak_score == -math.inf else self.peak_score,
            "site": self.site_id,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Series:
        ps = data.get("ps")
        return cls(
            samples=[(int(t), float(v)) for t, v in data.get("s", [])],
            newest_us=int(data.get("n", -1)),
            open=bool(data.get("o", False)),
            alert_id=data.get("a"),
            since_us=int(data.get("t", 0)),
            peak=data.get("p"),
            peak_score=-math.inf if ps is None else float(ps),
            site_id=data.get("site"),
            dirty=False,
        )


Judgement = tuple[int, float, float] | None  # (at_us, value, score) when it holds


class Engine:
    def __init__(
        self, rules: dict[int, AnyRule], max_series: int = 100_000, max_samples: int = 10_000
    ) -> None:
        self.rules = rules
        self.series: dict[SeriesKey, Series] = {}
        self.max_series = max_series
        self.max_samples = max_samples
        self.too_late = 0  # points older than their rule's window
        self.refused_series = 0  # series beyond max_series
        # Points judged on a window that max_samples cut short, and their
        # rules: such a rule sees less than it asks for and may never fire.
        self.cut_short = 0
        self.cut_rules: set[int] = set()
        self._by_metric: dict[str | None, list[tuple[int, AnyRule]]] = {}
        self._index()

    def set_rules(self, rules: dict[int, AnyRule]) -> None:
        """New rules; series of rules gone or changed start over."""
        changed = {r for r in self.rules.keys() | rules.keys() if self.rules.get(r) != rules.get(r)}
        if changed:  # rules are read again every few seconds, and mostly the same
            for key in [k for k in self.series if k[0] in changed]:
                del self.series[key]
        self.rules = rules
        self._index()

    def _index(self) -> None:
        """Enabled rules by the metric they select (None: every metric)."""
        self._by_metric = {}
        for rid, rule in self.rules.items():
            if rule.enabled:
                self._by_metric.setdefault(rule.select.metric, []).append((rid, rule))

    def _series(self, key: SeriesKey, site_id: str | None) -> Series | None:
        s = self.series.get(key)
        if s is None:
            if len(self.series) >= self.max_series:
                self.refused_series += 1
                return None
            s = self.series[key] = Series(site_id=site_id)
        elif site_id is not None:
            s.site_id = site_id
        return s

    def observe(
        self, point: Point, site_id: str | None, device_type: str | None, *, now_us: int
    ) -> list[Transition]:
        """Judges the rules that select the point's series; ``now_us`` is the
        evaluator's clock (only no-data rules read it)."""
        time_us, device_id, metric, value = point
        out: list[Transition] = []
        candidates = self._by_metric.get(metric, []) + self._by_metric.get(None, [])
        for rid, rule in candidates:
            if not rule.select.matches(device_id, site_id, device_type, metric):
                continue
            series_metric = (
                "" if isinstance(rule, NoData) and rule.select.metric is None else metric
            )
            key = (rid, device_id, series_metric)
            s = self._series(key, site_id)
            if s is None:
                continue
            if isinstance(rule, NoData):
                self._seen(key, rule, s, (time_us, now_us), out)
            else:
                self._add(key, rule, s, (time_us, value), out)
        return out

    def tick(self, now_us: int) -> list[Transition]:
        """Raises no-data alarms that are due at ``now_us``."""
        out: list[Transition] = []
        for key, s in self.series.items():
            rule = self.rules.get(key[0])
            if not isinstance(rule, NoData) or s.open or s.newest_us < 0:
                continue
            due = s.newest_us + int(rule.for_s * US)
            if now_us >= due:
                silent = (now_us - s.newest_us) / US
                self._raise(key, s, due, value=silent, score=silent, out=out)
        return out

    # ------------------------------------------------------------ no data
    def _seen(
        self, key: SeriesKey, rule: NoData, s: Series, seen: tuple[int, int], out: list[Transition]
    ) -> None:
        t, now_us = seen
        if t <= s.newest_us:
            return
        s.newest_us, s.dirty = t, True
        if s.open and now_us - t < rule.for_s * US:
            self._clear(key, s, max(t, now_us), (now_us - t) / US, out)

    # ------------------------------------------------------------ windowed kinds
    def _add(
        self,
        key: SeriesKey,
        rule: Threshold | Rate | Stuck | Outlier,
        s: Series,
        sample: tuple[int, float],
        out: list[Transition],
    ) -> None:
        t, v = sample
        samples = s.samples
        keep_us = int(rule.keeps_s * US)
        if (
            samples
            and t < samples[0][0]
            and t < s.newest_us - keep_us
            and len(samples) >= _min_kept(rule)
        ):
            self.too_late += 1
            return
        if s.window is None and isinstance(rule, Outlier):
            s.window = WindowValues(x for _, x in samples)
        if not samples or t > samples[-1][0]:
            samples.append((t, v))  # the common case, inline: this runs per point and rule
            if s.window is not None:
                s.window.add(v)
        else:
            _place(s, t, v)
        s.newest_us = max(s.newest_us, t)
        s.dirty = True
        drop, cut = _outside(samples, s.newest_us - keep_us, _min_kept(rule), self.max_samples)
        if drop:
            _forget(s, drop)
        if cut:
            self.cut_short += 1
            self.cut_rules.add(key[0])
        if not s.open:
            fired = _fires(rule, s)
            if fired is not None:
                at, value, worst = fired
                self._raise(key, s, at, value=value, score=worst, out=out)
            return
        now = _measure(rule, s)
        if now is not None and now[2] > s.peak_score:
            s.peak, s.peak_score = now[1], now[2]
        if _clears(rule, samples, now):
            last = samples[-1]
            self._clear(key, s, last[0], now[1] if now else last[1], out)

    def _raise(
        self,
        key: SeriesKey,
        s: Series,
        at: int,
        *,
        value: float,
        score: float,
        out: list[Transition],
    ) -> None:
        s.open, s.since_us, s.peak, s.peak_score, s.alert_id = True, at, value, score, None
        s.dirty = True
        out.append(Transition(key[0], key[1], key[2], s.site_id, "raised", at, value, value))

    def _clear(
        self, key: SeriesKey, s: Series, at: int, value: float, out: list[Transition]
    ) -> None:
        out.append(Transition(key[0], key[1], key[2], s.site_id, "cleared", at, value, s.peak))
        s.open, s.peak, s.peak_score, s.dirty = False, None, -math.inf, True


def _min_kept(rule: AnyRule) -> int:
    if isinstance(rule, Threshold):
        return rule.count
    if isinstance(rule, Outlier):
        return rule.min_samples + 1
    return 2


def _place(s: Series, t: int, v: float) -> None:
    """Puts a late sample where its time goes; one of the same time is replaced."""
    samples, window = s.samples, s.window
    i = bisect.bisect_left(samples, (t, -math.inf))
    if i < len(samples) and samples[i][0] == t:
        if window is not None:
            window.remove(samples[i][1])
        samples[i] = (t, v)
    else:
        samples.insert(i, (t, v))
    if window is not None:
        window.add(v)


def _forget(s: Series, drop: int) -> None:
    """Drops the oldest ``drop`` samples."""
    if s.window is not None:
        for _, x in s.samples[:drop]:
            s.window.remove(x)
    del s.samples[:drop]


def _outside(samples: Samples, horizon: int, min_kept: int, most: int) -> tuple[int, bool]:
    """How many samples to drop: those before the window, but the one just
    before it; and all but the newest ``most``. True when ``most`` cuts into
    what the rule needs."""
    droppable = len(samples) - min_kept
    drop = 0  # counted from the start: a sample is dropped once, so this is O(1) a point
    while drop < droppable and samples[drop + 1][0] < horizon:
        drop += 1
    over = len(samples) - most
    return max(drop, over), over > drop


def _breaches(direction: str, value: float, threshold: float) -> bool:
    return value > threshold if direction == "above" else value < threshold


def _score(direction: str, value: float) -> float:
    return value if direction == "above" else -value


def _fires(rule: Threshold | Rate | Stuck | Outlier, s: Series) -> Judgement:
    if isinstance(rule, Threshold):
        return _threshold_fires(rule, s.samples)
    got = _measure(rule, s)
    if got is None:
        return None
    if isinstance(rule, Rate):
        return got if _breaches(rule.direction, got[1], rule.threshold) else None
    if isinstance(rule, Outlier):
        return got if got[2] > rule.threshold else None
    return got if got[2] <= rule.epsilon else None


def _clears(rule: Threshold | Rate | Stuck | Outlier, samples: Samples, got: Judgement) -> bool:
    if isinstance(rule, Threshold):
        clear = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
        v = samples[-1][1]
        return v <= clear if rule.direction == "above" else v >= clear
    if got is None:
        return False
    if isinstance(rule, Rate):
        clear = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
        return got[1] <= clear if rule.direction == "above" else got[1] >= clear
    if isinstance(rule, Outlier):
        clear = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
        return got[2] <= clear
    return got[2] > rule.epsilon


def _threshold_fires(rule: Threshold, samples: Samples) -> Judgement:
    """The first point of the newest run of breaching points at which the run
    is ``count`` long and ``for_s`` old, if it is."""
    n = len(samples)
    start = n
    while start > 0 and _breaches(rule.direction, samples[start - 1][1], rule.threshold):
        start -= 1
    if start == n:
        return None
    need_us = int(rule.for_s * US)
    t0 = samples[start][0]
    for k in range(start + rule.count - 1, n):
        t, v = samples[k]
        if t - t0 >= need_us:
            return t, v, _score(rule.direction, v)
    return None


def _measure(rule: Threshold | Rate | Stuck | Outlier, s: Series) -> Judgement:
    """What the rule measures at the newest point: (time, value, score)."""
    samples = s.samples
    t, v = samples[-1]
    if isinstance(rule, Threshold):
        return t, v, _score(rule.direction, v)
    if isinstance(rule, Rate):
        ref = _before(samples, t - int(rule.window_s * US))
        if ref is None:
            return None
        rate = (v - ref[1]) / ((t - ref[0]) / US)
        return t, rate, _score(rule.direction, rate)
    if isinstance(rule, Stuck):
        spread = _spread(samples, rule.for_s)
        return None if spread is None else (t, v, spread)
    assert s.window is not None  # made by _add for an outlier rule
    return score(rule.method, rule.window_s, rule.min_samples, samples, s.window)


def _before(samples: Samples, at: int) -> tuple[int, float] | None:
    """The newest sample at or before ``at``."""
    i = bisect.bisect_right(samples, (at, math.inf))
    return samples[i - 1] if i > 0 else None


def _spread(samples: Samples, for_s: float) -> float | None:
    """max - min from the sample at or before newest - for_s to the newest;
    None when no sample reaches back that far."""
    t = samples[-1][0]
    i = bisect.bisect_right(samples, (t - int(for_s * US), math.inf))
    if i == 0:
        return None
    values = [v for _, v in samples[i - 1 :]]
    return max(values) - min(values)
