"""From (topic, payload) to points and dead letters: the topic picks the route,
the route's codec decodes. Never raises: whatever the bytes, the outcome is
points, dead letters, or both.

The only place that makes dead letters: every rejected_messages row, whoever
rejects (a codec, the router, a fault of ours, the database), is cut to the
table's bounds (MAX_DL_*) here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bridge.config import Route
from core.codec import Codec, CodecError, DecodeContext
from core.limits import Limits
from core.topics import TopicError, TopicFields
from core.types import DeadLetter, Point, Reject, TextPoint

# Bounds of one rejected_messages row (the table's CHECK constraints).
MAX_DL_PAYLOAD = 8192
MAX_DL_TOPIC = 1024
MAX_DL_DETAIL = 1024
MAX_DL_REASON = 64
MAX_DL_LISTED = 32  # rejects of one reason whose details a dead letter lists


@dataclass(slots=True)
class Routed:
    points: list[Point] = field(default_factory=list)
    texts: list[TextPoint] = field(default_factory=list)  # string values
    historical: list[Point] = field(default_factory=list)  # stored, not cached as latest
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rejected_points: dict[str, int] = field(default_factory=dict)  # reason -> count
    rejected_message: str | None = None  # reason, when the whole message was rejected
    device_id: str | None = None
    site_id: str | None = None
    sites: dict[str, str | None] = field(default_factory=dict)  # named by the payload


class Router:
    # Topics already matched, with their fields and codec. A device publishes
    # on the same topic every time, so splitting and checking it (about 1 µs)
    # happens once per topic, not once per message. Only valid topics are
    # kept, at most MAX_KNOWN_TOPICS (some 300 bytes each). When it is full,
    # new topics are matched but not kept, and the cache is emptied at most
    # once per KEEP_FULL_S so that topics seen now can take the place of those
    # no longer used: emptying it at every fill cost a fleet of 100,000 devices
    # more than the hits saved (bench/README.md, the cardinality sweep).
    MAX_KNOWN_TOPICS = 16_384
    KEEP_FULL_S = 60.0

    def __init__(self, routes: list[Route], limits: Limits) -> None:
        self._routes = [route.compile(limits) for route in routes]
        self._limits = limits
        self._known: dict[str, tuple[TopicFields, Codec]] = {}
        self._emptied_at = time.monotonic()

    @property
    def filters(self) -> list[str]:
        """The MQTT topic filters to subscribe to (before the $share prefix)."""
        return list(dict.fromkeys(t.subscription for t, _ in self._routes))

    def route(self, topic: str, payload: bytes, received_us: int) -> Routed:
        out = Routed()
        try:
            known = self._known.get(topic)
            if known is None:
                known = self._match(topic)
            fields, codec = known
            out.device_id, out.site_id = fields.device_id, fields.site_id
            ctx = DecodeContext(fields.device_id, fields.metric, received_us, self._limits)
            decoded = codec.decode(payload, ctx)
        except (CodecError, TopicError) as exc:
            out.rejected_message = exc.reason
            out.dead_letters.append(
                _dead_letter(received_us, topic, payload, exc.reason, exc.detail)
            )
            return out
        out.points = decoded.points
        out.texts = decoded.texts
        out.sites = decoded.sites
        first = decoded.points[0] if decoded.points else decoded.texts[0] if decoded.texts else None
        if first is not None and first.device_id != out.device_id:
            out.device_id = first.device_id  # a mapping route's device_path or constant
        if decoded.rejects:
            by_reason: dict[str, list[Reject]] = {}
            for reject in decoded.rejects:
                by_reason.setdefault(reject.reason, []).append(reject)
            for reason, rejects in by_reason.items():
                out.rejected_points[reason] = len(rejects)
                # Each reject's detail, as many as fit (a line-protocol reject
                # names its line: every bad line is findable).
                detail = f"{len(rejects)} point(s) rejected; first: {rejects[0].detail}"
                if len(rejects) > 1:
                    detail += "; then: " + "; ".join(r.detail for r in rejects[1:MAX_DL_LISTED])
                out.dead_letters.append(_dead_letter(received_us, topic, payload, reason, detail))
        return out

    def _match(self, topic: str) -> tuple[TopicFields, Codec]:
        """The first route whose template matches; CodecError or TopicError if none."""
        for template, codec in self._routes:
            fields = template.match(topic)
            if fields is not None:
                if len(self._known) >= self.MAX_KNOWN_TOPICS:
                    now = time.monotonic()
                    if now - self._emptied_at < self.KEEP_FULL_S:
                        return fields, codec
                    self._known.clear()
                    self._emptied_at = now
                self._known[topic] = fields, codec
                return fields, codec
        raise CodecError("no_route", "no configured topic template matches this topic")


def internal_error(topic: str, payload: bytes, received_us: int, exc: Exception) -> Routed:
    """A message the bridge failed to handle through a fault of its own."""
    reason = "internal_error"
    letter = _dead_letter(received_us, topic, payload, reason, f"{type(exc).__name__}: {exc}")
    return Routed(dead_letters=[letter], rejected_message=reason)


def db_rejected(point: Point | TextPoint, why: str) -> DeadLetter:
    """A point or text value the database refused for good (a constraint it enforces and the
    codecs do not know). Its record names the point, ``<device>/<metric>`` in
    ``topic``, with its own time in ``received_at`` and no payload: the message
    it came in held other points, which were stored."""
    topic = f"{point.device_id}/{point.metric}"
    return _dead_letter(point.time_us, topic, b"", "db_rejected", why)


def dead_letter(
    received_us: int, topic: str, payload: bytes, reason: str, detail: str
) -> DeadLetter:
    """A rejected_messages row, cut to the table's bounds (for a router of
    its own: bridge.sparkplug.host)."""
    return _dead_letter(received_us, topic, payload, reason, detail)


def _dead_letter(
    received_us: int, topic: str, payload: bytes, reason: str, detail: str
) -> DeadLetter:
    return DeadLetter(
        received_us=received_us,
        topic=_cut_text(topic, MAX_DL_TOPIC),
        reason=reason[:MAX_DL_REASON],
        detail=_cut_text(detail, MAX_DL_DETAIL),
        payload=payload[:MAX_DL_PAYLOAD],
        payload_size=len(payload),
    )


def _cut_text(text: str, max_bytes: int) -> str:
    """At most max_bytes of UTF-8, cut on a character boundary, without NULs
    (which PostgreSQL text cannot hold)."""
    text = text.replace("\x00", "\\0")
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")
