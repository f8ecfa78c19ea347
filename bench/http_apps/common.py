"""In-memory data served by every candidate app: no database, so the bench
measures the framework and the server. Rows are plain dicts with datetime
values, as a database driver would hand them over; each framework converts and
serializes them per request in its own way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SITES = [f"site-{n:02d}" for n in range(10)]
DEVICES_PER_SITE = 500
SERIES_POINTS = 2_000
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 50
DEFAULT_METRIC = "flow_rate"
MAX_METRIC_LEN = 64

_T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
_TYPES = ("esp", "rod_pump", "gas_lift", "separator")
_STATUSES = ("online", "online", "online", "offline", "maintenance")


def _devices() -> dict[str | None, list[dict[str, Any]]]:
    by_site: dict[str | None, list[dict[str, Any]]] = {None: []}
    n = 0
    for site in SITES:
        rows = by_site.setdefault(site, [])
        for _ in range(DEVICES_PER_SITE):
            row = {
                "device_id": f"dev_{n}",
                "site_id": site,
                "device_type": _TYPES[n % len(_TYPES)],
                "status": _STATUSES[n % len(_STATUSES)],
                "last_seen": _T0 - timedelta(seconds=n),
                "metadata": {},
            }
            rows.append(row)
            by_site[None].append(row)
            n += 1
    return by_site


DEVICES = _devices()

# (time, value) pairs, whole seconds (every serializer writes them the same way).
POINTS: list[tuple[datetime, float]] = [
    (_T0 + timedelta(seconds=10 * i), 1000.0 + (i % 500) * 0.25) for i in range(SERIES_POINTS)
]


def device_page(
    site: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of devices (an unknown site is an empty page) and the cursor
    of the next page, None after the last one. The cursor is an offset; a
    malformed one starts from the beginning."""
    rows = DEVICES.get(site, [])
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    end = offset + limit
    return rows[offset:end], (str(end) if end < len(rows) else None)
