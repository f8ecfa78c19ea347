"""Paths into a decoded JSON document: JMESPath expressions, compiled once.

JMESPath was chosen over JSONPath by bench/bench_paths.py (figures in
bench/README.md): one specification with a compliance suite, functions
(``join``, ``to_number``) and literals for the rare shapes that need them, and
the faster of the maintained Python implementations on the payloads devices
send.

``JsonPath(text)`` raises ValueError for an expression that does not parse;
``find(doc)`` returns what it selects, None when it selects nothing (JMESPath
does not tell a missing key from a null). A path that is only field names
(``BME280.Temperature``, ``params."switch:0".apower``) is read with dict
lookups, which give the same answer as the interpreter at a fraction of the
cost; anything else goes to jmespath. ``find`` raises ``PathFailed`` when the
expression fails at run time (a function given the wrong type); nothing else.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from core.errors import BridgeError


class PathFailed(BridgeError):
    """The expression could not be evaluated on this document."""


class JsonPath:
    __slots__ = ("_compiled", "fields", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._compiled = jmespath.compile(text)
        except JMESPathError as exc:
            where = getattr(exc, "lex_position", None)
            at = "" if where is None else f" (at column {where})"
            raise ValueError(
                f"{text!r} is not a JMESPath expression: {_first_line(exc).rstrip(':')}{at}"
            ) from None
        except (TypeError, ValueError, RecursionError) as exc:  # the lexer on odd input
            raise ValueError(f"{text!r} is not a JMESPath expression: {exc}") from None
        self.fields: tuple[str, ...] | None = _fields(self._compiled.parsed)

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    def find(self, doc: object) -> object:
        fields = self.fields
        if fields is not None:
            for name in fields:
                if type(doc) is not dict:
                    return None
                doc = doc.get(name)
            return doc
        try:
            return self._compiled.search(doc)
        except JMESPathError as exc:
            raise PathFailed(f"{self.text!r} failed: {_first_line(exc)}") from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise PathFailed(f"{self.text!r} failed: {type(exc).__name__}") from None


def _fields(node: Any) -> tuple[str, ...] | None:  # a jmespath AST node
    """The field names of a path made only of fields, else None."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind == "subexpression":
        out: tuple[str, ...] = ()
        for child in node["children"]:
            part = _fields(child)
            if part is None:
                return None
            out += part
        return out
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
