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

Escaping, as InfluxDB documents it: in the measurement a backslash escapes a
comma or space; in tag keys, tag values and field keys a comma, ``=`` or
space; in a string field value a double quote or backslash. Two backslashes
are one backslash everywhere; a backslash before any other character is a
literal backslash.

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
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(r"[+-]?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_TIMESTAMP = re.compile(r"-?[0-9]{1,20}")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
_MEASUREMENT_ESCAPES = ", \\"
_KEY_ESCAPES = ",= \\"


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
                f"{_escape(measurement, ', ')} {_escape(field, ',= ')}={float(value)!r} {stamp}"
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
        head, fields, stamp = _sections(line)
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
        for pair in fields.split(",") if plain else _split(fields, ",", quotes=True):
            if plain:
                key, equals, raw = pair.partition("=")
                if not key or not equals:
                    raise Rejected("bad_line", f"field {show(pair)} is not key=value")
            else:
                key, raw = _pair(pair, "field", value_escapes=False)
            metric = metrics.get((measurement, key))
            if metric is None:
                full = f"{measurement}.{key}"
                name = metric_name(self.options.metrics.get(full, full), limits.max_metric_len)
                metric = metrics[(measurement, key)] = name
            if raw[:1] == '"':
                text = text_value(_string(raw, metric), metric, limits)
                texts.append(TextPoint(time_us, device, metric, text))
            else:
                points.append(new_point(Point, (time_us, device, metric, _number(raw, metric))))
        self.points += points
        self.texts += texts
        if site is not None:
            self.sites[device] = site
        elif device not in self.sites:
            self.sites[device] = None  # the registry learns of it

    def _head(self, head: str) -> tuple[str, str, str | None]:
        """(measurement, device, site) of a line's measurement and tags."""
        measurement, *tag_pairs = _split(head, ",")
        measurement = _unescape(measurement, _MEASUREMENT_ESCAPES)
        if not measurement:
            raise Rejected("bad_line", "no measurement")
        tags = dict(_pair(pair, "tag") for pair in tag_pairs)
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


def _sections(line: str) -> tuple[str, str, str | None]:
    """(measurement and tags, fields, timestamp or None), split at the
    unescaped spaces outside string values."""
    if "\\" not in line and '"' not in line:
        parts = line.split(" ")
    else:  # quotes open string values only in the fields, after the head
        head, *rest = _split(line, " ", maxsplit=1)
        parts = [head, *_split(rest[0], " ", quotes=True)] if rest else [head]
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) < 2:
        raise Rejected("bad_line", "no fields (expected measurement[,tags] fields [time])")
    raise Rejected("bad_line", f"{len(parts)} space-separated parts, at most 3 expected")


def _split(text: str, sep: str, *, quotes: bool = False, maxsplit: int = -1) -> list[str]:
    """``text`` split at each ``sep`` not escaped by a backslash (nor, with
    ``quotes``, inside a string value: from a double quote right after ``=``
    to the next unescaped one)."""
    if "\\" not in text and (not quotes or '"' not in text):
        return text.split(sep, maxsplit)
    out: list[str] = []
    start = i = 0
    quoted = after_equals = False
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            after_equals = False
            continue
        if quoted:
            quoted = c != '"'
        elif quotes and c == '"' and after_equals:
            quoted = True
        elif c == sep and len(out) != maxsplit:
            out.append(text[start:i])
            start = i + 1
        after_equals = c == "=" and not quoted
        i += 1
    if quoted:
        raise Rejected("bad_line", "a string value has no closing quote")
    out.append(text[start:])
    return out


def _pair(text: str, what: str, *, value_escapes: bool = True) -> tuple[str, str]:
    """A ``key=value`` at its first unescaped ``=``: (key, value), the key
    unescaped, the value too when ``value_escapes`` (tags; a field's value is
    read by its type)."""
    parts = _split(text, "=") if "\\" in text else text.split("=", 1)
    if len(parts) < 2 or not parts[0]:
        raise Rejected("bad_line", f"{what} {show(text)} is not key=value")
    key = _unescape(parts[0], _KEY_ESCAPES)
    value = "=".join(parts[1:])
    if value_escapes:
        if not value:
            raise Rejected("bad_line", f"{what} {key!r} has an empty value")
        value = _unescape(value, _KEY_ESCAPES)
    return key, value


def _unescape(text: str, specials: str) -> str:
    """A backslash before one of ``specials`` (backslash among them) is dropped."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in specials:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _string(raw: str, metric: str) -> str:
    """A string field's value (``raw`` starts with its opening quote), the
    quotes removed and ``\\"`` and ``\\\\`` unescaped; the closing quote
    must end it."""
    if "\\" not in raw and raw.find('"', 1) == len(raw) - 1:
        return raw[1:-1]
    out: list[str] = []
    i, n = 1, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n and raw[i + 1] in '"\\':
            out.append(raw[i + 1])
            i += 2
        elif c == '"':
            if i != n - 1:
                raise Rejected("bad_line", f"{metric}: {show(raw)} goes on after its closing quote")
            return "".join(out)
        else:
            out.append(c)
            i += 1
    raise Rejected("bad_line", f"{metric}: string value {show(raw)} has no closing quote")


def _number(raw: str, metric: str) -> float:
    # float() alone would also take "1_000", " 1", "nan" and non-ASCII digits:
    # it runs first (the common case) only where it means what _FLOAT does.
    if raw.isascii() and "_" not in raw and raw == raw.strip():
        try:
            number = float(raw)
        except ValueError:
            pass
        else:
            if number - number == 0.0:  # finite
                return number
            if _FLOAT.fullmatch(raw):
                raise Rejected(
                    "non_finite_value", f"{metric}: value {show(raw)} is beyond a double"
                )
            raise Rejected("non_finite_value", f"{metric}: value {show(raw)} is not finite")
    last = raw[-1:]
    if last == "i" and _INT.fullmatch(raw, 0, len(raw) - 1):
        value = int(raw[:-1])
        if not _INT64[0] <= value <= _INT64[1]:
            raise Rejected("bad_value", f"{metric}: integer {show(raw)} is beyond 64 bits")
        return float(value)
    if last == "u" and _UINT.fullmatch(raw, 0, len(raw) - 1):
        value = int(raw[:-1])
        if value > _UINT64_MAX:
            raise Rejected("bad_value", f"{metric}: unsigned {show(raw)} is beyond 64 bits")
        return float(value)
    if raw in _TRUE:
        return 1.0
    if raw in _FALSE:
        return 0.0
    raise Rejected(
        "bad_value",
        f"{metric}: {show(raw)} is not a float, integer (1i), unsigned (1u), boolean or string",
    )


def _escape(text: str, specials: str) -> str:
    text = text.replace("\\", "\\\\")
    for c in specials:
        text = text.replace(c, "\\" + c)
    return text


__all__ = ["LineProtocol", "LineProtocolOptions", "Precision"]
