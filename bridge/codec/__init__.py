"""Codecs: the bytes of one MQTT message become points.

    payload (bytes) + DecodeContext (device and metric from the topic, receive
    time, limits)  ->  codec.decode  ->  Decoded(points, rejects) | CodecError

Contract of ``Codec.decode``, for every codec and whatever the bytes:

- it returns a ``Decoded`` or raises ``CodecError``; nothing else escapes;
- ``CodecError(reason, detail)``: the whole message is unusable; the caller
  dead-letters it and acks it;
- ``Decoded.points`` are all storable: finite value, valid metric name, time
  within the limits, ``device_id`` the topic's; ``Decoded.rejects`` are the
  points of the message that were dropped, one ``Reject`` each, to be
  dead-lettered; a ``Decoded`` always holds at least one of either;
- it keeps no state between calls, so one instance serves every worker.

The rules shared by all codecs, and the reasons they report, are in
``bridge.codec.values``. Codecs are chosen by name from ``CODECS``.
"""

from __future__ import annotations

from typing import Protocol

from bridge.codec.flat_json import FlatJson
from bridge.codec.raw_value import RawValue
from bridge.codec.seed_json import SeedJson
from bridge.codec.values import CodecError, DecodeContext, Decoded


class Codec(Protocol):
    name: str

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded: ...


CODECS: dict[str, Codec] = {
    "seed_json": SeedJson(),
    "flat_json": FlatJson(),
    "raw_value": RawValue(),
}

__all__ = ["CODECS", "Codec", "CodecError", "DecodeContext", "Decoded"]
