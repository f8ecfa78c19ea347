"""An InfluxDB line-protocol writer for the tests, written from InfluxDB's
documentation and apart from core.codec.line_protocol (whose decoder the
tests check against it): escapes by regular expression, writes every value
type, and picks a spelling at random where the format allows several."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What each element escapes, per InfluxDB's "Special characters" table; a
# backslash is doubled everywhere so that a literal one survives.
_MEASUREMENT = re.compile(r"([, \\])")
_KEY = re.compile(r"([,= \\])")
_STRING = re.compile(r'(["\\])')

TRUE_SPELLINGS = ("t", "T", "true", "True", "TRUE")
FALSE_SPELLINGS = ("f", "F", "false", "False", "FALSE")


@dataclass(frozen=True)
class Field:
    key: str
    kind: str  # float, int, uint, bool, string
    value: float | int | bool | str
    spelling: int = 0  # which of the booleans' spellings


def escape_measurement(text: str) -> str:
    return _MEASUREMENT.sub(r"\\\1", text)


def escape_key(text: str) -> str:
    return _KEY.sub(r"\\\1", text)


def write_value(field: Field) -> str:
    v = field.value
    if field.kind == "string":
        assert isinstance(v, str)
        return '"' + _STRING.sub(r"\\\1", v) + '"'
    if field.kind == "int":
        return f"{int(v)}i"
    if field.kind == "uint":
        return f"{int(v)}u"
    if field.kind == "bool":
        spellings = TRUE_SPELLINGS if v else FALSE_SPELLINGS
        return spellings[field.spelling % len(spellings)]
    return repr(float(v))


def write_line(
    measurement: str, tags: dict[str, str], fields: list[Field], timestamp: int | None
) -> str:
    head = escape_measurement(measurement) + "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in tags.items()
    )
    body = ",".join(f"{escape_key(f.key)}={write_value(f)}" for f in fields)
    tail = "" if timestamp is None else f" {timestamp}"
    return f"{head} {body}{tail}"
