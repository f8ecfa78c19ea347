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
from bridge.sparkplug.state import (
    Alias,
    Birth,
    BirthMetric,
    Entity,
    Message,
    Node,
    Status,
    bd_seq_of,
    birth_metrics,
)
from core.limits import Limits
from core.rules import (
    CodecError,
    Rejected,
    TimeWindow,
    check_window,
    is_metric_name,
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
        worker, or this one taking the role again): they replace what it
        knew; DATA decodes at once; the next seq sets where a node stands."""
        self.close()
        self.nodes = {}
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
        max_len = self.limits.max_metric_len
        for m in metrics:
            key = sp.metric_key(prefix + m.name)
            entry = (key, m.datatype, is_metric_name(key, max_len))
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
        metrics, bd_seq = birth_metrics(m.payload, m.rejects)
        self._cancel_gap(node)
        node.own = self._entity(where.node, None, metrics)
        node.bd_seq, node.devices = bd_seq, {}
        node.seq = m.payload.seq % 256 if m.payload.HasField("seq") else None
        self._on_store(Birth(where.group, where.node, "", bd_seq, metrics))
        self._online(m, True)
        self._values(m, node.own)

    def _dbirth(self, m: Message) -> None:
        node, where = m.node, m.where
        assert where.device is not None
        if node.own is None:
            self._no_birth(m, "DBIRTH before its node's NBIRTH")
            return
        self._check_seq(m)
        metrics, _ = birth_metrics(m.payload, m.rejects)
        entity = node.devices[where.device] = self._entity(where.node, where.device, metrics)
        self._on_store(Birth(where.group, where.node, where.device, None, metrics))
        self._online(m, True)
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
        bd_seq = bd_seq_of(m.payload)
        if node.own is None or bd_seq != node.bd_seq:
            self._count_stale_death()
            log.info(
                "NDEATH of %s/%s ignored: its bdSeq %s is not the current birth's %s",
                where.group, where.node, bd_seq, node.bd_seq,
            )  # fmt: skip
            return
        self._cancel_gap(node)
        node.own.online = False
        self._online(m, False)
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
        self._online(m, False)

    def _online(self, m: Message, online: bool) -> None:
        """The registry status of the message's device; with edge_node
        identity a device has no row of its own (its metrics are its node's),
        so only the node's births and death move it."""
        if m.where.device is not None and self.settings.identity == "edge_node":
            return
        if m.out.device_id is not None:
            self._on_store(Status(m.out.device_id, m.out.site_id or "", online))

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
        default_ms = m.payload.timestamp or None
        device_id = out.device_id or ""
        points, historical = out.points, out.historical
        unknown_alias = False
        by_alias, fast = entity.by_alias, sp.FAST_SCALARS
        earliest, latest = window.earliest_us, window.latest_us
        for metric in m.payload.metrics:
            if metric.is_transient:
                continue
            if metric.name:
                known = _named(entity, metric, rejects)
                if known is None:
                    continue
            else:
                known = by_alias.get(metric.alias)
                if known is None:
                    rejects.append(Reject("unknown_alias", f"alias {metric.alias} is in no birth"))
                    unknown_alias = True
                    continue
            key, datatype, valid = known
            if not key or metric.is_null:
                continue
            raw_ms = metric.timestamp or default_ms  # 0 is no time: 1970 is out of any window
            reader = fast.get(datatype)
            if reader is not None and valid and raw_ms is not None:
                field, convert = reader
                time_us = raw_ms * 1000
                if metric.WhichOneof("value") == field and earliest <= time_us <= latest:
                    try:
                        value = convert(getattr(metric, field))
                    except Rejected as exc:
                        rejects.append(Reject(exc.reject.reason, f"{key}: {exc.reject.detail}"))
                        continue
                    point = new_point(Point, (time_us, device_id, key, value))
                    (historical if metric.is_historical else points).append(point)
                    continue
            self._other(m, metric, known, raw_ms, window)
        if unknown_alias:
            self.request_rebirth(m.where.group, m.where.node, "unknown_alias")

    def _other(
        self, m: Message, metric: sp.Metric, known: Alias, raw_ms: int | None, window: TimeWindow
    ) -> None:
        """A metric off the fast path (strings, DataSets, Templates, or
        something wrong), with the checks that say what is wrong."""
        key, datatype, _ = known
        out, limits = m.out, self.limits
        device_id = out.device_id or ""
        try:
            time_us = (
                m.received_us if raw_ms is None else check_window(raw_ms * 1000, raw_ms, window)
            )
            for suffix, value in sp.values(metric, datatype, key):
                name = sp.metric_key(f"{key}.{suffix}") if suffix else key
                name = metric_name(name, limits.max_metric_len)
                if isinstance(value, str):
                    text = text_value(value, name, limits)
                    out.texts.append(TextPoint(time_us, device_id, name, text))
                else:
                    point = new_point(Point, (time_us, device_id, name, value))
                    (out.historical if metric.is_historical else out.points).append(point)
        except Rejected as exc:
            m.rejects.append(exc.reject)

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


def _named(entity: Entity, metric: sp.Metric, rejects: list[Reject]) -> Alias | None:
    """The stored name and datatype of a metric sent by name: from the birth
    (a birth's own metrics), or its own datatype; None, with its reject, when
    neither. ("", 0, False) for bdSeq, the session's number, not a value."""
    raw_name = metric.name
    if raw_name == BD_SEQ:
        return ("", 0, False)
    known = entity.by_name.get(raw_name)
    if known is not None:
        return known
    if not metric.datatype:
        rejects.append(
            Reject("unknown_metric", f"{show(raw_name)} is in no birth and has no datatype")
        )
        return None
    return (sp.metric_key(entity.prefix + raw_name), metric.datatype, False)


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
