"""How `bridge db status` writes durations."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.db.status import span


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(days=1), "1 day"),
        (dt.timedelta(days=90), "90 days"),
        (dt.timedelta(minutes=1), "1 min"),
        (dt.timedelta(minutes=15), "15 min"),
        (dt.timedelta(hours=1), "1 h"),
        (dt.timedelta(days=2, hours=6, seconds=5), "2 days 6 h 5 s"),
        (dt.timedelta(0), "0 s"),
        (None, "0 s"),
    ],
)
def test_durations_read_as_a_person_writes_them(value: dt.timedelta | None, text: str) -> None:
    assert span(value) == text
