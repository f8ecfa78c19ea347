"""Readings from the spool become compact MQTT messages, per device.

A message holds readings of one device only (the topic names the device, and
the bridge takes the device from the topic), at most
``max_points_per_message`` of them and about ``max_bytes_per_message`` bytes.
Timestamps go as integer epoch microseconds, which both codecs read exactly
(the bridge tells the unit by magnitude).

    seed_json   [{"timestamp": 1764237600123456, "data": {"flow_rate": 1234.5, "pip": 2750.0}}, ...]
                readings of the same time share one entry: the most compact
    flat_json   {"points": [{"metric": "flow_rate", "value": 1234.5, "ts": 1764237600123456}, ...]}
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from core.codec import CODECS
from edge_agent.spool import SpooledRow

# An upper bound of one point's bytes beyond its metric name, in either codec:
# the value (a double takes up to 24 characters), its own timestamp entry (17
# digits and the keys around them, worst case), quotes and separators.
_POINT_OVERHEAD = 72
_ENVELOPE = 16  # {"points":[...]} or [...]


@dataclass(slots=True)
class Message:
    """One packed message and the spool ids of the readings in it."""

    topic: str
    payload: bytes
    ids: array[int]
    attempts: int = 0  # publications so far, for the retry backoff
    # Commit receipts (edge_agent/receipts.py):
    seq: int = 0  # its sequence in this run, from its first publication; 0: not yet
    acked_at: float = 0.0  # monotonic time of its last PUBACK; 0: none yet
    queued: bool = False  # to be published again, or published again and not acked yet
    committed: bool = False  # receipted (or deleted on PUBACK): nothing more to do

    @property
    def points(self) -> int:
        return len(self.ids)


class Packer:
    def __init__(
        self,
        topic_template: str,
        site_id: str,
        codec: str,
        max_points: int,
        max_bytes: int,
    ) -> None:
        self._template = topic_template
        self._site_id = site_id
        self._codec = CODECS[codec]
        self._max_points = max_points
        self._max_bytes = max_bytes
        self._topics: dict[str, str] = {}

    def topic(self, device_id: str) -> str:
        topic = self._topics.get(device_id)
        if topic is None:
            topic = self._template.replace("{site_id}", self._site_id).replace(
                "{device_id}", device_id
            )
            self._topics[device_id] = topic
        return topic

    def pack(self, rows: list[SpooledRow]) -> list[Message]:
        """Messages for ``rows``, each device's readings in spool order."""
        by_device: dict[str, list[SpooledRow]] = {}
        for row in rows:
            by_device.setdefault(row[1], []).append(row)
        out: list[Message] = []
        for device_id, device_rows in by_device.items():
            topic = self.topic(device_id)
            chunk: list[SpooledRow] = []
            size = _ENVELOPE
            for row in device_rows:
                cost = len(row[2]) + _POINT_OVERHEAD
                if chunk and (len(chunk) >= self._max_points or size + cost > self._max_bytes):
                    out.append(self._message(topic, chunk))
                    chunk, size = [], _ENVELOPE
                chunk.append(row)
                size += cost
            out.append(self._message(topic, chunk))
        return out

    def repack(self, message: Message, rows: list[SpooledRow]) -> None:
        """Packs ``message`` again from its readings still in the spool (all
        of one device, and they fitted in one message before)."""
        fresh = self._message(message.topic, rows)
        message.payload, message.ids = fresh.payload, fresh.ids

    def _message(self, topic: str, rows: list[SpooledRow]) -> Message:
        # Readings of one time sit together, so seed_json shares their timestamp.
        rows.sort(key=lambda r: (r[3], r[0]))
        payload = self._codec.encode([(t, m, v) for _, _, m, t, v in rows])
        return Message(topic, payload, array("q", [r[0] for r in rows]))
