"""line_protocol: InfluxDB line protocol, as Telegraf's outputs.mqtt, the
InfluxDB client libraries and many ESP firmwares publish it.

    weather,device=ws-1,site=roof temp=21.5,rain=0i,ok=true,state="dry" 1700000000000000000

One message holds any number of lines, each ``measurement[,tag=v...]
field=value[,field=value...] [timestamp]``. Empty lines and lines starting
with ``#`` are skipped. A line ends at ``\\n`` (a ``\\r`` before it is
dropped); line protocol has no newline inside a value.

Mapping (options, ``LineProtocolOptions``):
  * each field is one point named ``<measurement>.<field>``, or the name
    ``metrics`` gives that key;
  * floats, integers (``1i``), unsigned integers (``1u``) and booleans
    (``t``/``true``/..., 1.0 and 0.0) become Points (telemetry); a string
    field (``"..."``) becomes a TextPoint (telemetry_text), bounded by
    ``limits.max_text_bytes``. Integers beyond 2**53 lose precision as doubles;
  * the device is the ``device_tag`` tag's value when the option names one and
    the line has it, else the topic's; the ``site_tag`` tag's value is that
    device's site. Each device of a stored line is in ``Decoded.sites`` (with
    its site, or None), so the registry learns of it. Other tags are ignored;
  * the timestamp is an integer in ``precision`` units (ns by default), cut to
    µs; without one, the receive time.

Escaping is InfluxDB's (core.codec.line_protocol_syntax says how).

Failures: a line that cannot be read or stored (bad syntax, a NaN or an
infinity, a bad name, a time outside the window, a string too long, bytes
that are not UTF-8) is rejected whole, one Reject per line whose detail
starts ``line N:``; the other lines of the message are kept. The whole
message is rejected (CodecError) only when it is too large, holds more
points and rejected lines than ``limits.max_points_per_message`` or holds no
line at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.codec.line_protocol_syntax import (
    MEASUREMENT_ESCAPES,
    escape,
    key_value,
    number_value,
    sections,
    split,
    string_value,
    unescape,
)
from core.rules import (
    DecodeContext,
    Decoded,
    Rejected,
    TimeWindow,
    check_point_count,
    check_size,
    check_window,
    config_metric_name,
    finish,
    id_problem,
    metric_name,
    new_point,
    show,
    text_value,
)
from core.types import Point, Reject, Sample, TextPoint

Precision = Literal["ns", "us", "ms", "s"]
# Multiply by the first, floor-divide by the second: a timestamp in µs.
_TO_US: dict[str, tuple[int, int]] = {
    "ns": (1, 1000),
    "us": (1, 1),
    "ms": (1000, 1),
    "s": (10**6, 1),
}
_TIMESTAMP = re.compile(r"-?[0-9]{1,20}")


class LineProtocolOptions(BaseModel):
    """A route's ``options`` for ``codec = "line_protocol"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_tag: str | None = Field(
        None, description="Tag whose value is the line's device id (else the topic's)."
    )
    site_tag: str | None = Field(None, description="Tag whose value is the device's site id.")
    precision: Precision = Field("ns", description="Unit of the timestamps: ns, us, ms or s.")
    metrics: dict[str, str] = Field(
        default_factory=dict,
        description='"<measurement>.<field>" -> metric name (default: that key itself).',
    )

    @field_validator("metrics")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            config_metric_name(name)
        return value


class LineProtocol:
    name = "line_protocol"

    def __init__(self, options: LineProtocolOptions | None = None) -> None:
        self.options = options or LineProtocolOptions.model_validate({})
        self._scale = _TO_US[self.options.precision]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LineProtocol:
        """ValueError naming the option when they are not valid."""
        try:
            return cls(LineProtocolOptions.model_validate(dict(options)))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"line_protocol options: {problems}") from None

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """One line per sample, ``<measurement> <field>=<value> <time>``, the
        metric split at its first dot; ValueError for a metric without one or a
        time the precision cannot hold. Decodes (with no ``metrics`` option) to
        exactly these points, on the topic's device."""
        mul, div = self._scale
        lines = []
        for time_us, metric, value in samples:
            measurement, dot, field = metric.partition(".")
            if not dot or not field:
                raise ValueError(f"metric {metric!r} is not <measurement>.<field>")
            stamp, rest = divmod(time_us * div, mul)
            if rest:
                raise ValueError(f"time {time_us} µs is not whole in {self.options.precision}")
            lines.append(
                f"{escape(measurement, ', ')} {escape(field, ',= ')}={float(value)!r} {stamp}"
            )
        return "\n".join(lines).encode()

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        check_size(payload, ctx.limits)
        try:
            lines: list[str | None] = list(payload.decode("utf-8").split("\n"))
        except UnicodeDecodeError:
            lines = [_utf8(line) for line in payload.split(b"\n")]
        reader = _Reader(self, ctx)
        for number, raw in enumerate(lines, 1):
            if raw is None:
                reader.rejects.append(Reject("bad_line", f"line {number}: not UTF-8"))
                continue
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line or line.isspace() or line.lstrip().startswith("#"):
                continue
            try:
                reader.line(line)
            except Rejected as exc:
                reason, detail = exc.reject
                reader.rejects.append(Reject(reason, f"line {number}: {detail}"))
            # Rejected lines count too: a message of bad lines is bounded alike.
            check_point_count(
                len(reader.points) + len(reader.texts) + len(reader.rejects), ctx.limits
            )
        decoded = finish(reader.points, reader.rejects, reader.texts)
        decoded.sites.update(reader.sites)
        return decoded


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Reader:
    """The points of one message, line by line."""

    def __init__(self, codec: LineProtocol, ctx: DecodeContext) -> None:
        self.options = codec.options
        self.scale = codec._scale
        self.ctx = ctx
        self.window = TimeWindow.of(ctx)
        self.points: list[Point] = []
        self.texts: list[TextPoint] = []
        self.rejects: list[Reject] = []
        self.sites: dict[str, str | None] = {}
        # Per message, so bounded by its size: heads and names already read.
        self.heads: dict[str, tuple[str, str, str | None]] = {}
        self.metrics: dict[tuple[str, str], str] = {}

    def line(self, line: str) -> None:
        """Adds the line's points; raises Rejected (adding none) when any part fails."""
        head, fields, stamp = sections(line)
        known = self.heads.get(head)  # the lines of a message repeat their heads
        if known is None:
            known = self.heads[head] = self._head(head)
        measurement, device, site = known
        time_us = self._time(stamp)
        limits = self.ctx.limits
        metrics = self.metrics
        points: list[Point] = []
        texts: list[TextPoint] = []
        plain = "\\" not in fields and '"' not in fields
        for pair in fields.split(",") if plain else split(fields, ",", quotes=True):
            if plain:
                key, equals, raw = pair.partition("=")
                if not key or not equals:
                    raise Rejected("bad_line", f"field {show(pair)} is not key=value")
            else:
                key, raw = key_value(pair, "field", value_escapes=False)
            metric = metrics.get((measurement, key))
            if metric is None:
                full = f"{measurement}.{key}"
                name = metric_name(self.options.metrics.get(full, full), limits.max_metric_len)
                metric = metrics[(measurement, key)] = name
            if raw[:1] == '"':
                text = text_value(string_value(raw, metric), metric, limits)
                texts.append(TextPoint(time_us, device, metric, text))
            else:
                points.append(
                    new_point(Point, (time_us, device, metric, number_value(raw, metric)))
                )
        self.points += points
        self.texts += texts
        if site is not None:
            self.sites[device] = site
        elif device not in self.sites:
            self.sites[device] = None  # the registry learns of it

    def _head(self, head: str) -> tuple[str, str, str | None]:
        """(measurement, device, site) of a line's measurement and tags."""
        measurement, *tag_pairs = split(head, ",")
        measurement = unescape(measurement, MEASUREMENT_ESCAPES)
        if not measurement:
            raise Rejected("bad_line", "no measurement")
        tags = dict(key_value(pair, "tag") for pair in tag_pairs)
        device = self._id(tags, self.options.device_tag, "device_id") or self.ctx.device_id
        return measurement, device, self._id(tags, self.options.site_tag, "site_id")

    def _time(self, stamp: str | None) -> int:
        if stamp is None:
            return self.window.received_us
        if _TIMESTAMP.fullmatch(stamp) is None:
            raise Rejected("bad_timestamp", f"timestamp {show(stamp)} is not an integer")
        mul, div = self.scale
        return check_window(int(stamp) * mul // div, stamp, self.window)

    def _id(self, tags: dict[str, str], tag: str | None, name: str) -> str | None:
        if tag is None or tag not in tags:
            return None
        value = tags[tag]
        problem = id_problem(value, name, self.ctx.limits.max_id_len)
        if problem is not None:
            raise Rejected(f"bad_{name.removesuffix('_id')}", f"tag {tag!r}: {problem}")
        return value


__all__ = ["LineProtocol", "LineProtocolOptions", "Precision"]
