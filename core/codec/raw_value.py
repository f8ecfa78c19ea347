"""raw_value: the payload is the value, as ESPHome and Tasmota publish it.

A bare number (``23.5``, ``-1e3``, ``1``), or ``true``/``false``/``ON``/``OFF``
in any case (1.0 and 0.0), with whitespace around it allowed. The metric is
the topic's ``{metric}`` level, so a template without one cannot use this
codec (``no_metric``); the time is the receive time. An empty payload (what
clears a retained message) holds no reading: ``no_points``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from core.rules import (
    CodecError,
    DecodeContext,
    Decoded,
    Rejected,
    check_size,
    metric_name,
    show,
)
from core.types import Point, Sample

# A decimal number in ASCII, as JSON writes it but with a leading "+", leading
# zeros and a bare "." allowed. float() alone would also take "1_000", "nan",
# and digits of other scripts.
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({b"true", b"on"})
_FALSE = frozenset({b"false", b"off"})
_NON_FINITE = frozenset({b"nan", b"inf", b"infinity"})


class RawValue:
    name = "raw_value"

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """One sample's value; its metric goes in the topic and its time is
        the receive time, so a message carries exactly one."""
        (sample,) = samples  # ValueError for none or several
        return repr(float(sample[2])).encode()

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        check_size(payload, ctx.limits)
        if ctx.metric is None:
            raise CodecError(
                "no_metric", "raw_value needs the metric in the topic; its template has no {metric}"
            )
        text = payload.strip()
        if not text:
            raise CodecError("no_points", "the payload is empty")
        try:
            metric = metric_name(ctx.metric, ctx.limits.max_metric_len)
            value = _value(text, metric)
        except Rejected as exc:
            return Decoded([], [exc.reject])
        return Decoded([Point(ctx.received_us, ctx.device_id, metric, value)], [])


def _value(text: bytes, metric: str) -> float:
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise Rejected("non_finite_value", f"{metric}: value {show(text)} is beyond a double")
    lowered = text.lower()
    if lowered in _TRUE:
        return 1.0
    if lowered in _FALSE:
        return 0.0
    if lowered.lstrip(b"+-") in _NON_FINITE:
        raise Rejected("non_finite_value", f"{metric}: value {show(text)} is not finite")
    raise Rejected(
        "bad_value", f"{metric}: expected a number, true/false or ON/OFF, got {show(text)}"
    )
