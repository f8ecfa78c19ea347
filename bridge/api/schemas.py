"""The shapes the API sends and takes, for the OpenAPI document. Responses
are built as plain dicts by bridge.api.service; these TypedDicts describe
them, and the schemathesis test checks that they agree."""

# No `from __future__ import annotations`: Litestar reads NotRequired at runtime.
from typing import Any, Literal, NotRequired, TypedDict


class Device(TypedDict):
    device_id: str
    site_id: str | None
    device_type: str | None
    status: Literal["online", "offline"]
    first_seen: str | None
    last_seen: str | None
    metadata: dict[str, Any]


class DevicePage(TypedDict):
    items: list[Device]
    next: str | None  # the cursor for ?after=, or null on the last page


class LatestValue(TypedDict):
    time: str
    value: float


class LatestText(TypedDict):
    time: str
    text: str


class DeviceDetail(Device):
    latest: dict[str, LatestValue]
    latest_text: dict[str, LatestText]  # string values (telemetry_text), newest per metric


class SeriesPoint(TypedDict):
    time: str  # the point's time, or the bucket's start
    value: float  # the value, or the bucket's average
    min: NotRequired[float]
    max: NotRequired[float]
    count: NotRequired[int]


class Series(TypedDict):
    metric: str
    points: list[SeriesPoint]


class Telemetry(TypedDict):
    device_id: str
    start: str
    end: str
    resolution: Literal["raw", "1m", "1h"]
    series: list[Series]


class TextPoint(TypedDict):
    time: str
    text: str


class TextSeries(TypedDict):
    metric: str
    points: list[TextPoint]


class TextTelemetry(TypedDict):
    device_id: str
    start: str
    end: str
    series: list[TextSeries]
    truncated: bool  # more values lie in the range than `limit`; narrow it


class SummaryRow(TypedDict):
    device_id: str
    metric: str
    count: int
    min: float
    max: float
    avg: float
    last: float


class Summary(TypedDict):
    start: str
    end: str
    series: list[SummaryRow]


class DeadLettered(TypedDict):
    point: str  # <device_id>/<metric>
    reason: str  # db_rejected: the database refused it for good
    detail: str


class Accepted(TypedDict):
    accepted: int
    durable: Literal["committed", "broker"]
    # Points the database refused for good, stored in rejected_messages as the
    # MQTT route stores them; sending them again would fail again.
    dead_lettered: NotRequired[list[DeadLettered]]


class Reading(TypedDict):
    device_id: str
    site_id: NotRequired[str]
    timestamp: NotRequired[str | float | None]  # RFC 3339 or epoch s/ms/µs/ns; absent: now
    data: dict[str, float | bool]


class ReadingBatch(TypedDict):
    readings: list[Reading]


class ProblemItem(TypedDict):
    reading: int | None
    metric: str | None
    reason: str
    detail: str


class Problem(TypedDict):
    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: NotRequired[list[ProblemItem]]
    reason: NotRequired[str]


class Health(TypedDict):
    status: str
    pid: NotRequired[int]  # /healthz: the serving process
    checks: NotRequired[dict[str, str]]


class Alarm(TypedDict):
    id: int
    rule_id: int | None
    rule: str | None
    kind: str | None
    severity: str
    status: Literal["active", "acknowledged", "resolved"]
    device_id: str
    site_id: str | None
    metric: str | None  # null for a device-level rule (no data from any metric)
    started_at: str
    ended_at: str | None
    value: float | None  # what the condition measured when it was raised
    peak: float | None  # the worst value while it was open
    acknowledged_by: str | None
    acknowledged_at: str | None
    note: str | None
    resolved_by: str | None  # "auto" when its clear condition held


class AlarmPage(TypedDict):
    start: str
    end: str
    items: list[Alarm]
    next: str | None  # the cursor for ?after=, or null on the last page


class AckRequest(TypedDict, total=False):
    by: str  # default: the API key's name
    note: str


class AlarmRule(TypedDict):
    id: int
    name: str
    enabled: bool
    kind: Literal["threshold", "rate", "stuck", "no_data", "outlier"]
    severity: Literal["critical", "major", "minor", "warning"]
    select: dict[str, str]
    created_at: str
    updated_at: str
    direction: NotRequired[Literal["above", "below"]]
    threshold: NotRequired[float]
    clear_threshold: NotRequired[float]
    for_s: NotRequired[float]
    count: NotRequired[int]
    window_s: NotRequired[float]
    epsilon: NotRequired[float]
    method: NotRequired[Literal["zscore", "mad"]]
    min_samples: NotRequired[int]


class AlarmRules(TypedDict):
    items: list[AlarmRule]
