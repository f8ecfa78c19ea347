"""The one thing every stage passes on: a reading."""

from __future__ import annotations

from typing import NamedTuple


class Reading(NamedTuple):
    """One value of one metric of one device at the device's time.

    ``time_us`` is microseconds since the Unix epoch, taken when the value was
    read (or, for the local MQTT collector, the time the device sent); it is
    kept unchanged all the way to the database.
    """

    device_id: str
    metric: str
    time_us: int
    value: float
