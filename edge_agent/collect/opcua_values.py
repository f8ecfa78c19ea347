"""What an OPC UA value becomes: readings, or a reason it is not stored.

- Numbers (every integer and float type) and booleans (1.0 / 0.0) become one
  reading of the node's metric. NaN and infinity are not stored ("not_finite").
- Strings, localized text and byte strings are text: the bridge has no place
  for text values yet, so they are counted ("text") and skipped.
- A one-dimensional array becomes ``<metric>.0``, ``<metric>.1``, ... for its
  first ``max_array_elements`` elements; the elements past that bound are
  counted ("array_bound") and skipped, and so are elements that are not
  numbers or booleans (counted by their own reason).
- Anything else (dates, GUIDs, structures, empty values) is "unsupported".

A value whose status code is Bad is not stored at all; the caller counts it
by status name. The timestamp stored is the one the node's group chose
(source or server), the other one when the chosen one is missing, and the
agent's clock when both are.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def time_us(when: datetime | None) -> int | None:
    """Microseconds since the epoch, exactly (asyncua's datetimes are UTC)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # OPC UA's "no time" is the minimum date (1601-01-01); treat it as missing.
    if when.year < 1970:
        return None
    return (when - _EPOCH) // _US


def _number(value: Any) -> float | str:
    """The value as a float, or why not."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else "not_finite"
    if isinstance(value, str | bytes | bytearray):
        return "text"
    if type(value).__name__ == "LocalizedText":
        return "text"
    return "unsupported"


def flatten(
    metric: str, value: Any, max_array_elements: int, skipped: Counter[str]
) -> Iterable[tuple[str, float]]:
    """(metric, value) pairs of one OPC UA value; what is not stored is added to ``skipped``."""
    if isinstance(value, list | tuple):
        for i, element in enumerate(value):
            if i >= max_array_elements:
                skipped["array_bound"] += len(value) - max_array_elements
                return
            number = _number(element)
            if isinstance(number, str):
                skipped[number] += 1
            else:
                yield f"{metric}.{i}", number
        return
    number = _number(value)
    if isinstance(number, str):
        skipped[number] += 1
    else:
        yield metric, number
