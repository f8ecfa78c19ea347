"""The Sparkplug host's state: births, aliases, seq and deaths, per edge node.

    (topic, payload) --route--> Routed (points, texts, dead letters)
                        \\--> on_rebirth(group, node, reason)   (rate-limited here)
                        \\--> on_store(Birth | Status)          (kept in PostgreSQL)

Runs synchronously on the event loop, in the one worker that holds the
Sparkplug role (bridge.sparkplug.service), so one node's messages are seen
by one ``Host`` in the order the broker sent them.

Invariants:
  * DATA is decoded with the aliases and datatypes of the node's last NBIRTH
    (node metrics) or the device's last DBIRTH: a metric sent by alias only
    gets its name and datatype from there. An NBIRTH forgets the node's
    device births (the specification has every device born again after it).
  * Whatever the bytes, ``route`` returns: a bad payload, DATA before its
    BIRTH, an unknown alias or a metric that cannot be stored becomes a dead
    letter with its reason; the message's other metrics are kept.
  * A rebirth is requested on DATA before a BIRTH, an unknown alias, a
    malformed payload, and a seq gap not filled within ``reorder_timeout_s``;
    at most one per node per ``rebirth_cooldown_s`` (the rest are counted as
    suppressed).
  * seq (0-255, wrapping) is shared by a node's N and D messages; the first
    message after a BIRTH, or after births were loaded from the database,
    sets where it stands. Messages are stored whatever their seq: a gap only
    means some are missing.
  * An NDEATH is honoured only when its bdSeq is the current NBIRTH's: it
    marks the node and its devices offline. DDEATH marks one device offline;
    a BIRTH brings it back online.
  * Metric flags: ``is_transient`` is not stored; ``is_null`` stores no
    value; ``is_historical`` is stored and goes to ``Routed.historical``,
    which the commit keeps out of the latest values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from bridge.config import SparkplugSettings
from bridge.router import Routed, dead_letter
from bridge.sparkplug.state import Alias, Birth, BirthMetric, Entity, Message, Node, Status
from core.limits import Limits
from core.rules import (
    CodecError,
    Rejected,
    TimeWindow,
    check_window,
    metric_name,
    new_point,
    show,
    text_value,
)
from core.sparkplug import payload as sp
from core.sparkplug import topic as spt
from core.sparkplug.encode import BD_SEQ
from core.types import Point, Reject, TextPoint

log = logging.getLogger("bridge.sparkplug")

RebirthCounter = Callable[[str, bool], None]  # (reason, sent)


class Host:
    def __init__(
        self,
        settings: SparkplugSettings,
        limits: Limits,
        *,
        on_rebirth: Callable[[str, str, str], None],
        on_store: Callable[[Birth | Status], None],
        count_rebirth: RebirthCounter,
        count_stale_death: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.nodes: dict[tuple[str, str], Node] = {}
        self._on_rebirth = on_rebirth
        self._on_store = on_store
        self._count_rebirth = count_rebirth
        self._count_stale_death = count_stale_death

    # ------------------------------------------------------------ births kept
    def load(self, births: Iterable[Birth]) -> None:
        """Births read back from the database (a restarted or new Sparkplug
        worker): DATA decodes at once; the next seq sets where a node stands."""
        for birth in births:
            node = self.nodes.setdefault((birth.group, birth.node), Node())
            entity = self._entity(birth.node, birth.device or None, birth.metrics)
            if birth.device:
                node.devices[birth.device] = entity
            else:
                node.own, node.bd_seq = entity, birth.bd_seq

    def _entity(self, node: str, device: str | None, metrics: Iterable[BirthMetric]) -> Entity:
        _, prefix = spt.device_id(self.settings.identity, node, device, self.limits.max_id_len)
        entity = Entity(prefix)
        for m in metrics:
            entry = (sp.metric_key(prefix + m.name), m.datatype)
            entity.by_name[m.name] = entry
            if m.alias is not None:
                entity.by_alias[m.alias] = entry
        return entity

    # ------------------------------------------------------------ messages
    def route(self, topic: str, payload: bytes, received_us: int) -> Routed:
        out = Routed()
        rejects: list[Reject] = []
        try:
            where = spt.parse(topic)
            out.device_id, _ = spt.device_id(
                self.settings.identity, where.node, where.device, self.limits.max_id_len
            )
            out.site_id = spt.safe_id(where.group, self.limits.max_id_len)
            if where.kind in ("NCMD", "DCMD"):
                return out  # commands to nodes (ours among them): nothing to store
            try:
                parsed = sp.parse(payload, self.limits)
            except CodecError:
                self.request_rebirth(where.group, where.node, "malformed_payload")
                raise
        except CodecError as exc:
            out.rejected_message = exc.reason
            out.dead_letters.append(
                dead_letter(received_us, topic, payload, exc.reason, exc.detail)
            )
            return out
        if parsed.damage is not None:
            rejects.append(parsed.damage)
            self.request_rebirth(where.group, where.node, "malformed_payload")
        node = self.nodes.setdefault((where.group, where.node), Node())
        message = Message(where, node, parsed.payload, out, rejects, received_us)
        _HANDLERS[where.kind](self, message)
        _letters(out, rejects, received_us, topic, payload)
        return out

    def _nbirth(self, m: Message) -> None:
        node, where = m.node, m.where
        metrics, bd_seq = _birth_metrics(m.payload, m.rejects)
        self._cancel_gap(node)
        node.own = self._entity(where.node, None, metrics)
        node.bd_seq, node.devices = bd_seq, {}
        node.seq = m.payload.seq % 256 if m.payload.HasField("seq") else None
        self._on_store(Birth(where.group, where.node, "", bd_seq, metrics))
        self._online(m.out, True)
        self._values(m, node.own)

    def _dbirth(self, m: Message) -> None:
        node, where = m.node, m.where
        assert where.device is not None
        if node.own is None:
            self._no_birth(m, "DBIRTH before its node's NBIRTH")
            return
        self._check_seq(m)
        metrics, _ = _birth_metrics(m.payload, m.rejects)
        entity = node.devices[where.device] = self._entity(where.node, where.device, metrics)
        self._on_store(Birth(where.group, where.node, where.device, None, metrics))
        self._online(m.out, True)
        self._values(m, entity)

    def _data(self, m: Message) -> None:
        node, where = m.node, m.where
        entity = node.own if where.device is None else node.devices.get(where.device)
        if entity is None or node.own is None:
            self._no_birth(m, f"{where.kind} before its BIRTH")
            return
        self._check_seq(m)
        self._values(m, entity)

    def _ndeath(self, m: Message) -> None:
        node, where, out = m.node, m.where, m.out
        bd_seq = _bd_seq(m.payload)
        if node.own is None or bd_seq != node.bd_seq:
            self._count_stale_death()
            log.info(
                "NDEATH of %s/%s ignored: its bdSeq %s is not the current birth's %s",
                where.group, where.node, bd_seq, node.bd_seq,
            )  # fmt: skip
            return
        self._cancel_gap(node)
        node.own.online = False
        self._online(out, False)
        for device, entity in node.devices.items():
            entity.online = False
            device_id, _ = spt.device_id(
                self.settings.identity, where.node, device, self.limits.max_id_len
            )
            if device_id != out.device_id:
                self._on_store(Status(device_id, out.site_id or "", False))
        node.seq = None

    def _ddeath(self, m: Message) -> None:
        assert m.where.device is not None
        self._check_seq(m)
        entity = m.node.devices.get(m.where.device)
        if entity is not None:
            entity.online = False
        self._online(m.out, False)

    def _online(self, out: Routed, online: bool) -> None:
        if out.device_id is not None:
            self._on_store(Status(out.device_id, out.site_id or "", online))

    def _no_birth(self, m: Message, why: str) -> None:
        m.rejects.append(Reject("no_birth", f"{why}: its aliases and datatypes are unknown"))
        self.request_rebirth(m.where.group, m.where.node, "no_birth")

    # ------------------------------------------------------------ values
    def _values(self, m: Message, entity: Entity) -> None:
        limits, received_us, out, rejects = self.limits, m.received_us, m.out, m.rejects
        window = TimeWindow(
            received_us,
            received_us - limits.max_age_days * 86_400_000_000,
            received_us + int(limits.max_future_skew_s * 1_000_000),
        )
        default_ms = m.payload.timestamp if m.payload.HasField("timestamp") else None
        device_id = out.device_id or ""
        points, texts, historical = out.points, out.texts, out.historical
        max_len = limits.max_metric_len
        unknown_alias = False
        for metric in m.payload.metrics:
            if metric.is_transient:
                continue
            known = _known(entity, metric, rejects)
            if known is None:
                unknown_alias = unknown_alias or not metric.HasField("name")
                continue
            if metric.is_null or not known[0]:
                continue
            key, datatype = known
            try:
                raw_ms = metric.timestamp if metric.HasField("timestamp") else default_ms
                time_us = (
                    received_us if raw_ms is None else check_window(raw_ms * 1000, raw_ms, window)
                )
                for suffix, value in sp.values(metric, datatype, key):
                    name = metric_name(sp.metric_key(f"{key}.{suffix}") if suffix else key, max_len)
                    if type(value) is str:
                        text = text_value(value, name, limits)
                        texts.append(TextPoint(time_us, device_id, name, text))
                    else:
                        point = new_point(Point, (time_us, device_id, name, value))
                        (historical if metric.is_historical else points).append(point)
            except Rejected as exc:
                rejects.append(exc.reject)
        if unknown_alias:
            self.request_rebirth(m.where.group, m.where.node, "unknown_alias")

    # ------------------------------------------------------------ seq
    def _check_seq(self, m: Message) -> None:
        node, where = m.node, m.where
        if not m.payload.HasField("seq"):
            return
        seq = m.payload.seq % 256
        if node.seq is None:
            node.seq = seq
            return
        if seq in node.missing:  # a late one: the gap closes
            node.missing.discard(seq)
            if not node.missing:
                self._cancel_gap(node)
            return
        expected = (node.seq + 1) % 256
        if seq != expected:
            ahead = (seq - expected) % 256
            node.missing.update((expected + i) % 256 for i in range(ahead))
            if node.gap_timer is None:
                node.gap_timer = asyncio.get_running_loop().call_later(
                    self.settings.reorder_timeout_s, self._gap_expired, where.group, where.node
                )
        node.seq = seq

    def _gap_expired(self, group: str, node_id: str) -> None:
        node = self.nodes.get((group, node_id))
        if node is None:
            return
        node.gap_timer = None
        if node.missing:
            node.missing.clear()
            self.request_rebirth(group, node_id, "seq_gap")

    def _cancel_gap(self, node: Node) -> None:
        node.missing.clear()
        if node.gap_timer is not None:
            node.gap_timer.cancel()
            node.gap_timer = None

    # ------------------------------------------------------------ rebirth
    def request_rebirth(self, group: str, node_id: str, reason: str) -> None:
        node = self.nodes.setdefault((group, node_id), Node())
        now = time.monotonic()
        if now - node.last_rebirth < self.settings.rebirth_cooldown_s:
            self._count_rebirth(reason, False)
            return
        node.last_rebirth = now
        self._count_rebirth(reason, True)
        self._on_rebirth(group, node_id, reason)

    def close(self) -> None:
        for node in self.nodes.values():
            self._cancel_gap(node)


def _known(entity: Entity, metric: sp.Metric, rejects: list[Reject]) -> Alias | None:
    """The stored name and datatype of a DATA or BIRTH metric: from the birth
    by alias, or by name (a birth's own metrics, a metric sent by name with
    its datatype); None, with its reject, when neither. ("", 0) for bdSeq,
    which is the session's number, not a value."""
    if not metric.HasField("name"):
        known = entity.by_alias.get(metric.alias)
        if known is None:
            rejects.append(Reject("unknown_alias", f"alias {metric.alias} is in no birth"))
        return known
    raw_name = metric.name
    if raw_name == BD_SEQ:
        return ("", 0)
    known = entity.by_name.get(raw_name)
    if known is not None:
        return known
    if not metric.datatype:
        rejects.append(
            Reject("unknown_metric", f"{show(raw_name)} is in no birth and has no datatype")
        )
        return None
    return (sp.metric_key(entity.prefix + raw_name), metric.datatype)


def _birth_metrics(msg: sp.Payload, rejects: list[Reject]) -> tuple[list[BirthMetric], int | None]:
    metrics: list[BirthMetric] = []
    bd_seq = None
    for m in msg.metrics:
        if not m.HasField("name"):
            rejects.append(Reject("bad_birth", "a birth metric has no name"))
            continue
        if m.name == BD_SEQ:
            bd_seq = _int(m)
            continue
        alias = m.alias if m.HasField("alias") else None
        if alias is not None and alias > sp.MAX_ALIAS:
            rejects.append(Reject("bad_alias", f"{m.name!r}: alias {alias} is beyond 2^63-1"))
            alias = None
        metrics.append(BirthMetric(m.name, alias, m.datatype))
    return metrics, bd_seq


def _bd_seq(msg: sp.Payload) -> int | None:
    for m in msg.metrics:
        if m.name == BD_SEQ:
            return _int(m)
    return None


def _int(m: sp.Metric) -> int | None:
    kind = m.WhichOneof("value")
    if kind == "long_value":
        return int(m.long_value)
    if kind == "int_value":
        return int(m.int_value)
    return None


def _letters(
    out: Routed, rejects: list[Reject], received_us: int, topic: str, payload: bytes
) -> None:
    """The message's rejected metrics as dead letters, one per reason."""
    by_reason: dict[str, list[Reject]] = {}
    for reject in rejects:
        by_reason.setdefault(reject.reason, []).append(reject)
    for reason, group in by_reason.items():
        out.rejected_points[reason] = len(group)
        detail = f"{len(group)} metric(s) rejected; first: {group[0].detail}"
        out.dead_letters.append(dead_letter(received_us, topic, payload, reason, detail))


_HANDLERS = {
    "NBIRTH": Host._nbirth,
    "DBIRTH": Host._dbirth,
    "NDATA": Host._data,
    "DDATA": Host._data,
    "NDEATH": Host._ndeath,
    "DDEATH": Host._ddeath,
}
