"""Codecs: the bytes of one MQTT message become points, and back.

    payload (bytes) + DecodeContext (device and metric from the topic, receive
    time, limits)  ->  codec.decode  ->  Decoded(points, rejects) | CodecError

Contract of ``Codec.decode``, for every codec and whatever the bytes:

- it returns a ``Decoded`` or raises ``CodecError``; nothing else escapes;
- ``CodecError(reason, detail)``: the whole message is unusable; the caller
  dead-letters it and acks it;
- ``Decoded.points`` are all storable: finite value, valid metric name, time
  within the limits, ``device_id`` the topic's (or, for a mapping route that
  says so, the payload's or a constant); ``Decoded.rejects`` are the
  points of the message that were dropped, one ``Reject`` each, to be
  dead-lettered; a ``Decoded`` always holds at least one of either;
- it keeps no state between calls, so one instance serves every worker.

``Codec.encode`` is its inverse for one device's samples (time, metric,
value): what it returns decodes to exactly those points. The edge agent and
the API's broker route publish with it.

The rules shared by all codecs, and the reasons they report, are in
``core.rules``. Codecs without options are chosen by name from ``CODECS``,
one instance per name; a route builds its own with ``build_codec``, which
also configures the codecs that take options (``mapping``, one instance per
route: core.codec.mapping; ``line_protocol``: core.codec.line_protocol).

A codec may also return string values (``Decoded.texts``, stored in
telemetry_text) and, for devices the payload names, their sites
(``Decoded.sites``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from core.codec.flat_json import FlatJson
from core.codec.line_protocol import LineProtocol
from core.codec.mapping import MappingCodec
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

CONFIGURED = ("mapping", "line_protocol")  # codecs that take options; built per route
CODEC_NAMES = (*CODECS, *CONFIGURED)


def build_codec(name: str, options: Mapping[str, Any], max_id_len: int = 128) -> Codec:
    """The codec a route names, configured by its options; ValueError saying
    what is wrong (an unknown name, an option it does not take)."""
    if name == "mapping":
        return MappingCodec.from_options(options, max_id_len)
    if name == "line_protocol":
        return LineProtocol.from_options(options)
    codec = CODECS.get(name)
    if codec is None:
        raise ValueError(f"unknown codec {name!r} (known: {', '.join(sorted(CODEC_NAMES))})")
    if options:
        raise ValueError(f"codec {name!r} takes no options; only {' and '.join(CONFIGURED)} do")
    return codec


__all__ = [
    "CODECS",
    "CODEC_NAMES",
    "Codec",
    "CodecError",
    "DecodeContext",
    "Decoded",
    "build_codec",
]
