"""What Grafana does to a dashboard's SQL before PostgreSQL sees it, for the
dashboards' tests (Grafana itself is not installable here).

Three steps, in Grafana's order:

1. The browser replaces template variables (templateSrv.replace with the SQL
   datasources' interpolateVariable): a multi-value or include-All variable
   becomes a comma-separated list of quoted literals ('a','b'); a
   single-value one is inserted bare, its quotes doubled.
2. The backend's global substitutions (sqleng Interpolate): $__interval_ms,
   $__interval (gtime.FormatInterval), $__unixEpochFrom(), $__unixEpochTo().
3. The PostgreSQL macro engine (grafana-postgresql-datasource/macros.go):
   every $__name(args) by the regex \\$(\\w+)\\(([^)]*)\\). With the
   datasource's TimescaleDB flag, $__timeGroup is time_bucket('%.3fs', col);
   without it, floor(extract(epoch from col)/N)*N with N as Go's %v prints
   a float64.

$__interval itself is what the browser computes for a panel: the range over
its max data points, rounded by rangeutil.roundInterval.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"

# templateSrv's variable syntax: $name, [[name]] and ${name...}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")

# rangeutil.roundInterval: (below this many ms, use this interval).
_ROUNDING = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)


@dataclass(frozen=True)
class Variable:
    """A template variable as a panel sees it: its current values and kind."""

    name: str
    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False


def panel_interval(start: dt.datetime, end: dt.datetime, max_points: int = 1000) -> dt.timedelta:
    """$__interval for a panel of ``max_points`` over [start, end]."""
    raw_ms = (end - start).total_seconds() * 1000 / max_points
    if raw_ms < 10:
        return dt.timedelta(milliseconds=1)
    for below, ms in _ROUNDING:
        if raw_ms < below:
            return dt.timedelta(milliseconds=ms)
    return dt.timedelta(days=365)


def format_interval(interval: dt.timedelta) -> str:
    """gtime.FormatInterval: the largest unit that fits, truncated."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size in (("y", 365 * 86400000), ("d", 86400000), ("h", 3600000), ("m", 60000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    if ms >= 1000:
        return f"{ms // 1000}s"
    return f"{ms}ms" if ms >= 1 else "1ms"


def parse_interval(text: str) -> float:
    """gtime.ParseInterval, for the units FormatInterval writes: seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if match is None:
        raise ValueError(f"Grafana cannot parse the interval {text!r}")
    size = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return int(match[1]) * size[match[2]]


def go_float(value: float) -> str:
    """A float64 as Go's %v prints it (strconv 'g', shortest digits): %e when
    the decimal exponent is below -4 or at least 6, else plain digits."""
    digits_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    power = len(digits) + int(exponent) - 1
    if power < -4 or power >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mantissa}e{power:+03d}"
    return format(Decimal(repr(value)).normalize(), "f")


def rfc3339(moment: dt.datetime) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    moment = moment.astimezone(dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        variable = variables.get(name)
        if variable is None:  # not a variable (a macro, $__interval): left for later steps
            return match[0]
        if match[3] or match[5] or match[6]:
            raise ValueError(f"format or field syntax not modelled here: {match[0]}")
        if variable.multi or variable.include_all:
            return ",".join(quote_literal(v) for v in variable.values)
        (value,) = variable.values
        return value.replace("'", "''")

    return _VARIABLE.sub(replace, sql)


def interpolate_global(
    sql: str, start: dt.datetime, end: dt.datetime, interval: dt.timedelta
) -> str:
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    return sql.replace("$__unixEpochTo()", str(int(end.timestamp())))


def interpolate_macros(sql: str, start: dt.datetime, end: dt.datetime, timescaledb: bool) -> str:
    frm, to = rfc3339(start), rfc3339(end)

    def group(args: Sequence[str]) -> str:
        if len(args) < 2:
            raise ValueError("$__timeGroup needs a column and an interval")
        if len(args) == 3:
            raise ValueError("fill modes are not modelled here")
        seconds = parse_interval(args[1].strip("'"))
        if timescaledb:
            return f"time_bucket('{seconds:.3f}s',{args[0]})"
        return f"floor(extract(epoch from {args[0]})/{go_float(seconds)})*{go_float(seconds)}"

    lo, hi = int(start.timestamp()), int(end.timestamp())
    macros: dict[str, Callable[[list[str]], str]] = {
        "__time": lambda a: f'{a[0]} AS "time"',
        "__timeEpoch": lambda a: f'extract(epoch from {a[0]}) as "time"',
        "__timeFilter": lambda a: f"{a[0]} BETWEEN '{frm}' AND '{to}'",
        "__timeFrom": lambda a: f"'{frm}'",
        "__timeTo": lambda a: f"'{to}'",
        "__timeGroup": group,
        "__timeGroupAlias": lambda a: group(a) + ' AS "time"',
        "__unixEpochFilter": lambda a: f"{a[0]} >= {lo} AND {a[0]} <= {hi}",
    }

    def replace(match: re.Match[str]) -> str:
        name, args = match[1], [a.strip(" ") for a in match[2].split(",")]
        if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility rule
        if name not in macros:
            raise ValueError(f"unknown macro {name!r}")
        return macros[name](args)

    return _MACRO.sub(replace, sql)


def expand(
    sql: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    variables: Mapping[str, Variable],
    timescaledb: bool,
    interval: dt.timedelta | None = None,
) -> str:
    """The SQL Grafana sends to PostgreSQL for a panel over [start, end]."""
    interval = interval or panel_interval(start, end)
    sql = interpolate_variables(sql, variables)
    sql = interpolate_global(sql, start, end, interval)
    return interpolate_macros(sql, start, end, timescaledb)


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((DASHBOARDS / name).read_bytes())
    return doc


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: load(p.name) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows included."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def datasource_uid(ref: Any) -> str:
    return str(ref["uid"]) if isinstance(ref, dict) else str(ref)
