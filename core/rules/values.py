"""A point's value: a JSON number or boolean as a finite float, or a string
that telemetry_text can hold. Each failure is Rejected (one point)."""

from __future__ import annotations

from core.limits import Limits
from core.rules.contract import Rejected, kind, show


def point_value(raw: object, metric: str) -> float:
    """A JSON number or boolean as a finite float; raises Rejected otherwise.
    ``metric`` only names the point in the detail."""
    if type(raw) is float:
        if raw - raw == 0.0:  # false for inf and nan; cheaper than math.isfinite
            return raw
        raise Rejected("non_finite_value", f"{metric}: value {raw!r} is not finite")
    if type(raw) is int:
        try:
            return float(raw)
        except OverflowError:
            raise Rejected(
                "non_finite_value", f"{metric}: value {show(raw)} is beyond a double"
            ) from None
    if type(raw) is bool:
        return 1.0 if raw else 0.0
    got = f"{kind(raw)} {show(raw)}" if type(raw) is str else kind(raw)
    raise Rejected("bad_value", f"{metric}: value must be a number or boolean, got {got}")


def text_value(raw: str, metric: str, limits: Limits) -> str:
    """A string value as stored in telemetry_text; raises Rejected when it is
    longer than ``limits.max_text_bytes`` in UTF-8 or holds a NUL (which
    PostgreSQL text cannot hold). ``metric`` only names the point in the detail."""
    if "\x00" in raw:
        raise Rejected("bad_text", f"{metric}: string holds a NUL character")
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        raise Rejected("bad_text", f"{metric}: string is not valid Unicode") from None
    if size > limits.max_text_bytes:
        raise Rejected(
            "text_too_long",
            f"{metric}: string of {size} bytes is longer than the {limits.max_text_bytes} allowed",
        )
    return raw
