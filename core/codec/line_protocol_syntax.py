"""The lexical layer of InfluxDB line protocol (core.codec.line_protocol):
a line split into its sections, key=value pairs, escapes, string values and
number literals.

Escaping, as InfluxDB documents it: in the measurement a backslash escapes a
comma or space; in tag keys, tag values and field keys a comma, ``=`` or
space; in a string field value a double quote or backslash. Two backslashes
are one backslash everywhere; a backslash before any other character is a
literal backslash.

Every function here is pure; what it cannot read raises Rejected
(``bad_line``, ``bad_value`` or ``non_finite_value``) with a detail that
shows the input, never the whole of it. The common case (no backslash, no
quote) takes the plain ``str.split`` path.
"""

from __future__ import annotations

import re

from core.rules import Rejected, show

_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(r"[+-]?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
MEASUREMENT_ESCAPES = ", \\"
KEY_ESCAPES = ",= \\"


def sections(line: str) -> tuple[str, str, str | None]:
    """(measurement and tags, fields, timestamp or None), split at the
    unescaped spaces outside string values."""
    if "\\" not in line and '"' not in line:
        parts = line.split(" ")
    else:  # quotes open string values only in the fields, after the head
        head, *rest = split(line, " ", maxsplit=1)
        parts = [head, *split(rest[0], " ", quotes=True)] if rest else [head]
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) < 2:
        raise Rejected("bad_line", "no fields (expected measurement[,tags] fields [time])")
    raise Rejected("bad_line", f"{len(parts)} space-separated parts, at most 3 expected")


def split(text: str, sep: str, *, quotes: bool = False, maxsplit: int = -1) -> list[str]:
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


def key_value(text: str, what: str, *, value_escapes: bool = True) -> tuple[str, str]:
    """A ``key=value`` at its first unescaped ``=``: (key, value), the key
    unescaped, the value too when ``value_escapes`` (tags; a field's value is
    read by its type)."""
    parts = split(text, "=") if "\\" in text else text.split("=", 1)
    if len(parts) < 2 or not parts[0]:
        raise Rejected("bad_line", f"{what} {show(text)} is not key=value")
    key = unescape(parts[0], KEY_ESCAPES)
    value = "=".join(parts[1:])
    if value_escapes:
        if not value:
            raise Rejected("bad_line", f"{what} {key!r} has an empty value")
        value = unescape(value, KEY_ESCAPES)
    return key, value


def unescape(text: str, specials: str) -> str:
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


def string_value(raw: str, metric: str) -> str:
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


def number_value(raw: str, metric: str) -> float:
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


def escape(text: str, specials: str) -> str:
    """``text`` written so that ``unescape(..., specials)`` reads it back: a
    backslash before each of ``specials`` and before each backslash."""
    text = text.replace("\\", "\\\\")
    for c in specials:
        text = text.replace(c, "\\" + c)
    return text
