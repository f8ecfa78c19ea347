"""Codecs: the bytes of one MQTT message become points, and back.

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

``Codec.encode`` is its inverse for one device's samples (time, metric,
value): what it returns decodes to exactly those points. The edge agent and
the API's broker route publish with it.

The rules shared by all codecs, and the reasons they report, are in
``core.rules``. Codecs are chosen by name from ``CODECS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from core.codec.flat_json import FlatJson
from core.codec.raw_value import RawValue
from core.codec.seed_json import SeedJson
from core.rules import CodecError, DecodeContext, Decoded
from core.types import Sample


class Codec(Protocol):
    name: str

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded: ...

    def encode(self, samples: Iterable[Sample]) -> bytes: ...


CODECS: dict[str, Codec] = {
    "seed_json": SeedJson(),
    "flat_json": FlatJson(),
    "raw_value": RawValue(),
}

__all__ = ["CODECS", "Codec", "CodecError", "DecodeContext", "Decoded"]
