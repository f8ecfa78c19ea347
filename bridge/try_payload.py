"""`bridge check-config --try-payload FILE --topic T`: the points a sample
payload would give, through the same router the workers use, so that a
route's mapping can be seen working before it is deployed. Connects to
nothing and writes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.config import Route, Settings
from bridge.errors import ConfigError
from bridge.router import Routed, Router
from core.topics import TopicError, TopicTemplate

MAX_SAMPLE_BYTES = 16_777_216  # the largest max_payload_bytes allows
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def received_at(text: str | None) -> int:
    """The receive time to pretend, in µs: now, or an RFC 3339 time."""
    if text is None:
        return time.time_ns() // 1000
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ConfigError(
            f"--received-at {text!r} is not a time such as 2026-11-27T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def try_payload(settings: Settings, sample: Path, topic: str, received_us: int) -> tuple[str, int]:
    """The report, and the exit status: 0 when the payload gives points or
    string values."""
    try:
        with sample.open("rb") as file:
            payload = file.read(MAX_SAMPLE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--try-payload {sample}: {exc.strerror or exc}") from None
    lines = [f"topic {topic!r}, {len(payload)} bytes from {sample}"]
    route = _route_of(settings.mqtt.routes, topic, settings)
    if route is None:
        lines.append("no route takes this topic: the bridge would dead-letter it (no_route)")
    else:
        options = f", options {route.options}" if route.options else ""
        lines.append(f"route {route.topic!r}, codec {route.codec}{options}")
    routed = Router(settings.mqtt.routes, settings.limits).route(topic, payload, received_us)
    lines.extend(_report(routed))
    return "\n".join(lines), 0 if routed.points or routed.texts else 1


def _route_of(routes: list[Route], topic: str, settings: Settings) -> Route | None:
    limits = settings.limits
    for route in routes:
        template = TopicTemplate(route.topic, limits.max_id_len, limits.max_metric_len)
        try:
            if template.match(topic) is not None:
                return route
        except TopicError:
            return route  # its shape, a bad level: the report shows the dead letter
    return None


def _report(routed: Routed) -> list[str]:
    lines = [f"points ({len(routed.points)}):"]
    width = max((len(p.metric) for p in routed.points), default=0)
    for point in routed.points:
        when = (_EPOCH + point.time_us * _MICROSECOND).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(f"  {when}  {point.device_id}  {point.metric:<{width}}  {point.value!r}")
    if routed.texts:
        lines.append(f"string values ({len(routed.texts)}):")
        width = max(len(t.metric) for t in routed.texts)
        for text in routed.texts:
            when = (_EPOCH + text.time_us * _MICROSECOND).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append(f"  {when}  {text.device_id}  {text.metric:<{width}}  {text.text!r}")
    if routed.dead_letters:
        lines.append(f"dead letters ({len(routed.dead_letters)}):")
        lines.extend(f"  {d.reason}: {d.detail}" for d in routed.dead_letters)
    return lines
