"""The outlier rule's score without a pass over its window in Python.

The score compares the newest value with the other samples of the window:
by their mean and standard deviation (``zscore``) or by their median and
the median of their distances from it (``mad``). Read from the window one
sample at a time, that cost a 600-sample window (10 Hz over 60 s) about
200 µs a point, nearly all of the evaluator's time with outlier rules.

``WindowValues`` follows a series' samples as they come and go: their sum
and the sum of their squares as exact integers (every finite double is a
whole multiple of 2**-1074), and their values sorted. A score takes the
window as all of them less the few outside it (the samples kept from
before the window, and the newest): the mean and variance from the sums,
the median by index, and the median distance by selection between the two
sorted runs of distances. The results are exactly those of the plain
formulas (tests/alarms/test_outlier.py holds them side by side): an exact
sum divided once rounds as ``math.fsum`` does, and a distance ``c - x`` is
``abs(x - c)`` in floating point.

Values are finite: committed points are (core.codec's contract).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Literal

US = 1_000_000
EXPONENT = 1074  # every finite double is a whole multiple of 2**-EXPONENT
# Above this many samples outside the window, sorting the window afresh is
# cheaper than taking each of them out of a copy of the sorted values.
FEW_OUTSIDE = 8


class WindowValues:
    """A series' sample values: sorted, and their exact sums."""

    __slots__ = ("huge", "squares", "total", "values")

    def __init__(self, values: Iterable[float]) -> None:
        self.values: list[float] = []
        self.total = self.squares = 0
        self.huge = 0  # values whose square is not a finite double
        for x in values:
            self.add(x)

    def add(self, value: float) -> None:
        bisect.insort_right(self.values, value)
        self._count(value, 1)

    def remove(self, value: float) -> None:
        del self.values[bisect.bisect_left(self.values, value)]
        self._count(value, -1)

    def _count(self, value: float, sign: int) -> None:
        total, square, huge = _parts(value)
        self.total += sign * total
        self.squares += sign * square
        self.huge += sign * huge


def score(
    method: Literal["zscore", "mad"],
    window_s: float,
    min_samples: int,
    samples: list[tuple[int, float]],
    window: WindowValues,
) -> tuple[int, float, float] | None:
    """(time, value, score) of the newest sample against the others within
    ``window_s`` before it; None while fewer than ``min_samples`` are there.
    ``samples`` are in time order and ``window`` follows their values."""
    t, v = samples[-1]
    first = bisect.bisect_left(samples, (t - int(window_s * US), -math.inf))
    n = len(samples) - 1 - first
    if n < min_samples:
        return None
    outside = [x for _, x in samples[:first]]
    outside.append(v)
    if method == "zscore":
        total, squares, huge = window.total, window.squares, window.huge
        for x in outside:
            less_total, less_square, less_huge = _parts(x)
            total, squares, huge = total - less_total, squares - less_square, huge - less_huge
        center = _float(total) / n
        mean_square = math.inf if huge else _float(squares) / n
        scale = math.sqrt(max(0.0, mean_square - center * center))
    else:
        if len(outside) <= FEW_OUTSIDE:
            others = window.values.copy()
            for x in outside:
                del others[bisect.bisect_left(others, x)]
        else:
            others = sorted(x for _, x in samples[first:-1])
        center = _median(others)
        scale = 1.4826 * _median_distance(others, center)
    deviation = abs(v - center)
    return t, v, deviation / scale if scale > 0 else (0.0 if deviation == 0 else math.inf)


def _parts(x: float) -> tuple[int, int, int]:
    """What one value adds to the sums: itself and its square exactly, or
    a count of 1 when its square is not a finite double."""
    square = x * x
    if math.isfinite(square):
        return _exact(x), _exact(square), 0
    return _exact(x), 0, 1


def _exact(x: float) -> int:
    """``x`` in units of 2**-EXPONENT, exactly."""
    numerator, denominator = x.as_integer_ratio()
    return numerator << (EXPONENT + 1 - denominator.bit_length())


def _float(units: int) -> float:
    """An exact sum back to the nearest double (int / int rounds correctly)."""
    try:
        return units / (1 << EXPONENT)
    except OverflowError:
        return math.copysign(math.inf, units)


def _median(values: list[float]) -> float:
    """As ``statistics.median`` of sorted values."""
    n = len(values)
    half = n // 2
    return values[half] if n % 2 else (values[half - 1] + values[half]) / 2


def _median_distance(values: list[float], center: float) -> float:
    """As ``statistics.median(abs(x - center) for x in values)`` of sorted
    values: the distances run up from ``center`` on each side of it."""
    n = len(values)
    half = n // 2
    split = bisect.bisect_left(values, center)
    if n % 2:
        return _kth_distance(values, center, split, half)
    lower = _kth_distance(values, center, split, half - 1)
    return (lower + _kth_distance(values, center, split, half)) / 2


def _kth_distance(values: list[float], center: float, split: int, k: int) -> float:
    """The k-th smallest (from 0) of the distances from ``center``: below
    ``split`` they grow leftwards, from it rightwards. Finds how many of the
    k + 1 smallest lie on the left by bisection."""
    n_left, n_right = split, len(values) - split

    def left(i: int) -> float:
        return center - values[split - 1 - i]

    def right(i: int) -> float:
        return values[split + i] - center

    lo, hi = max(0, k + 1 - n_right), min(k + 1, n_left)
    while lo < hi:
        i = (lo + hi) // 2
        if left(i) < right(k - i):
            lo = i + 1
        else:
            hi = i
    taken_right = k + 1 - lo
    candidates = []
    if lo > 0:
        candidates.append(left(lo - 1))
    if taken_right > 0:
        candidates.append(right(taken_right - 1))
    return max(candidates)
