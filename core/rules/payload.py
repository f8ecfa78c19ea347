"""The whole-message rules: the size bound, JSON parsing, the point count,
the device a payload names, and that a message holds something. Each failure
is a CodecError; the message is dead-lettered whole."""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec

from core.limits import Limits
from core.rules.contract import CodecError, DecodeContext, Decoded, show
from core.types import Point, Reject, TextPoint

JsonLoads = Callable[[bytes], object]

# msgspec's untyped decoder, chosen by bench/bench_decoders.py (figures in
# bench/results/decoders.json): about 1.5x the standard library on the whole
# decode path, a few percent ahead of orjson. Any callable that takes UTF-8
# bytes and raises ValueError or RecursionError on bad input can replace it.
FAST_LOADS: JsonLoads = msgspec.json.Decoder().decode


def check_size(payload: bytes, limits: Limits) -> None:
    if len(payload) > limits.max_payload_bytes:
        raise CodecError(
            "payload_too_large",
            f"{len(payload)} bytes, more than the {limits.max_payload_bytes} allowed",
        )


def parse_json(payload: bytes, limits: Limits, loads: JsonLoads = FAST_LOADS) -> object:
    """The payload as JSON values, or CodecError.

    The fast decoder is strict: it refuses the whole document when a number is
    beyond the range of a double (``1e999``) and it refuses ``NaN``. When it
    fails, the standard library decides instead (slower, but it reads those as
    infinities and NaN), so that such a number costs one point, not the whole
    message. Both only ever see UTF-8.
    """
    check_size(payload, limits)
    try:
        return loads(payload)
    except (ValueError, RecursionError):
        pass
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CodecError("malformed_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise CodecError("malformed_json", str(exc)[:200]) from None


def finish(
    points: list[Point], rejects: list[Reject], texts: list[TextPoint] | None = None
) -> Decoded:
    if not points and not rejects and not texts:
        raise CodecError("no_points", "the message holds no readings")
    return Decoded(points, rejects, texts or [])


def check_point_count(count: int, limits: Limits) -> None:
    if count > limits.max_points_per_message:
        raise CodecError(
            "too_many_points",
            f"{count} points, more than the {limits.max_points_per_message} allowed",
        )


def check_device(claimed: object, ctx: DecodeContext) -> None:
    """A device_id in the payload must be the topic's: the broker's ACL vouches
    for the topic, not for what the payload says."""
    if claimed != ctx.device_id:
        raise CodecError(
            "device_mismatch",
            f"payload names device {show(claimed)}, the topic {ctx.device_id!r}",
        )
