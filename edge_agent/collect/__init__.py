"""Collectors: where readings come from.

    simulator   a deterministic fleet (edge-agent simulate)
    modbus      PLCs polled over Modbus TCP ([[modbus.devices]])
    local_mqtt  sensors publishing to the gateway's own broker ([local_mqtt])

Contract: ``run(sink)`` collects until cancelled, and hands every reading to
``sink.put`` as soon as it has it; ``put`` returns once the readings are
committed to the spool. A collector never raises for a device that fails: it
counts, logs and retries, so one device never stops another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from core.types import Point


class Sink(Protocol):
    async def put(
        self, source: str, readings: Sequence[Point], state: Mapping[str, int] | None = None
    ) -> None:
        """Commits ``readings`` (and collector ``state``) to the spool, in one
        transaction; the commit happens even if the caller is cancelled meanwhile."""

    def state(self, key: str) -> int | None:
        """A collector's value saved with an earlier ``put``, or None."""


class Collector(Protocol):
    name: str

    async def run(self, sink: Sink) -> None: ...
