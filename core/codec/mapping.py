"""mapping: JSON as devices already send it, read through per-route paths.

Options (core.codec.mapping_options; presets in core.codec.presets) say:

- the device: the topic's {device_id} (default), a payload path
  (``device_path``, for gateways that publish for many devices) or a constant;
- the time: a path and its format, else the receive time;
- the readings: the whole document, or the object at ``root``, or each item
  of the list at ``items.path``; from them, the metrics named in ``metrics``
  (name -> path), or every numeric or boolean leaf (``leaves``), named by its
  keys joined with ``joiner`` (``BME280.Temperature``, list items by index),
  filtered by ``include``/``exclude`` globs; or, with ``items.name`` and
  ``items.value``, one point per item;
- per metric, ``scale`` and ``offset``: value * scale + offset.

Decode keeps the contract of every codec (core.codec): ``Decoded`` or
``CodecError``, nothing else. The whole message fails only when it is not
JSON, is too large, holds no reading at all (``no_points``), or its device
is missing or invalid (``missing_path``, ``path_error``, ``bad_device``). Everything else costs only the readings it touches, each a
``Reject``: a metric path that finds nothing (``missing_path``), an expression
that fails on this document (``path_error``), a value that is not a number
(``bad_value``, ``non_finite_value``), a bad or missing time (``bad_timestamp``,
``missing_path``, ``time_in_future``, ``time_too_old``), an object nested
deeper than ``max_depth`` (``too_deep``, one per subtree), and the leaves past
``max_leaves`` or the message's point limit (``too_many_leaves``, once: the
bound costs the excess, not the message). Values, names and times pass the
rules every codec shares (core.rules).

The device id in a payload is trusted as the route's configuration says:
the broker's ACL vouches only for the topic, so ``device_path`` belongs on
routes whose publishers may speak for others (a gateway).

Two small caches per route map leaf names to whether they are kept and to
their validated metric; they hold facts about names only and are emptied
when full, like the rules' metric-name cache, so decoding stays stateless in
effect and one instance serves a worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.codec.mapping_options import Spec, compile_options
from core.codec.paths import JsonPath, PathFailed
from core.rules import (
    FAST_LOADS,
    CodecError,
    DecodeContext,
    Decoded,
    JsonLoads,
    Rejected,
    TimeWindow,
    check_point_count,
    finish,
    id_problem,
    kind,
    metric_name,
    new_point,
    parse_json,
    point_value,
    show,
)
from core.types import Point, Reject, Sample

# A decimal number as a string, for numeric_strings: JSON's grammar, with a
# leading "+" allowed; never "nan", "inf" or "1_000".
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ON_OFF = {"ON": True, "OFF": False}
_KEPT_MAX = 4096

TimeOf = tuple[int, Reject | None]  # (time_us, or the reject every point of a reading gets)


class MappingCodec:
    name = "mapping"

    def __init__(self, spec: Spec, loads: JsonLoads = FAST_LOADS) -> None:
        self.spec = spec
        self._loads = loads
        self.kept_names: dict[str, bool] = {}  # leaf name -> kept, see kept()
        self.metric_of: dict[str, str] = {}  # leaf name -> its metric, "" if not kept

    @classmethod
    def from_options(cls, options: Mapping[str, Any], max_id_len: int = 128) -> MappingCodec:
        """ValueError naming the option when they are not valid."""
        return cls(compile_options(options, max_id_len))

    def encode(self, samples: Iterable[Sample]) -> bytes:
        raise NotImplementedError(
            "the mapping codec reads what devices publish; publish with seed_json or flat_json"
        )

    def decode(self, payload: bytes, ctx: DecodeContext) -> Decoded:
        doc = parse_json(payload, ctx.limits, self._loads)
        spec = self.spec
        window = TimeWindow.of(ctx)
        walk = _Walk(self, ctx, window)
        device = self._message_device(doc, ctx)
        if spec.time_optional or spec.time_path is None:
            when: TimeOf = (window.received_us, None)
        else:
            when = (0, Reject("missing_path", f"time_path {spec.time_path.text!r} found nothing"))
        when = walk.time_of(doc, spec.time_path, when)
        items = spec.items
        if items is None or items.name is not None:
            readings = doc if spec.root is None else walk.find(spec.root, doc, "root")
            if readings is not None:
                walk.readings(readings, device, when)
        if items is not None:
            walk.items(doc, device, when)
        check_point_count(len(walk.points), ctx.limits)
        return finish(walk.points, walk.rejects)

    def _message_device(self, doc: object, ctx: DecodeContext) -> str:
        spec = self.spec
        if spec.device is not None:
            return spec.device
        if spec.device_path is None:
            return ctx.device_id
        try:
            found = spec.device_path.find(doc)
        except PathFailed as exc:
            raise CodecError("path_error", f"device_path {exc}") from None
        if found is None:
            raise CodecError("missing_path", f"device_path {spec.device_path.text!r} found nothing")
        problem = id_problem(found, "device id", ctx.limits.max_id_len)
        if problem is not None:
            raise CodecError("bad_device", problem)
        return found  # type: ignore[return-value]  # a str: id_problem checked it

    def kept(self, name: str) -> bool:
        """Whether a leaf name passes include and exclude (cached)."""
        kept = self.kept_names.get(name)
        if kept is None:
            spec = self.spec
            kept = (spec.keep is None or spec.keep.match(name) is not None) and (
                spec.drop is None or spec.drop.match(name) is None
            )
            if len(self.kept_names) >= _KEPT_MAX:
                self.kept_names.clear()
            self.kept_names[name] = kept
        return kept


class _Walk:
    """One message's decoding: the points and rejects so far, and the leaf budget."""

    __slots__ = (
        "bound",
        "codec",
        "ctx",
        "exhausted",
        "left",
        "max_len",
        "points",
        "prefix",
        "rejects",
        "spec",
        "window",
    )

    def __init__(self, codec: MappingCodec, ctx: DecodeContext, window: TimeWindow) -> None:
        self.codec = codec
        self.spec = spec = codec.spec
        self.ctx = ctx
        self.window = window
        self.max_len = ctx.limits.max_metric_len
        self.points: list[Point] = []
        self.rejects: list[Reject] = []
        # Leaves (and too_deep subtrees) left to read: max_leaves, and never
        # more points than a message may hold, so the bound costs the excess
        # leaves rather than the whole message.
        self.bound = self.left = min(spec.max_leaves, ctx.limits.max_points_per_message)
        self.exhausted = False
        self.prefix = ""
        if spec.topic_metric_prefix and ctx.metric is not None:
            self.prefix = ctx.metric + spec.joiner

    def find(self, path: JsonPath, doc: object, key: str) -> object:
        """What the path selects; None, with a reject, when it selects nothing."""
        try:
            found = path.find(doc)
        except PathFailed as exc:
            self.rejects.append(Reject("path_error", f"{key} {exc}"))
            return None
        if found is None:
            self.rejects.append(Reject("missing_path", f"{key} {path.text!r} found nothing"))
        return found

    def time_of(self, doc: object, path: JsonPath | None, missing: TimeOf) -> TimeOf:
        """The time at the path; ``missing`` when there is none."""
        if path is None:
            return missing
        try:
            raw = path.find(doc)
        except PathFailed as exc:
            return 0, Reject("path_error", f"time {exc}")
        if raw is None:
            return missing
        try:
            return self.spec.read_time(raw, self.window), None
        except Rejected as exc:
            return 0, exc.reject

    def readings(self, obj: object, device: str, when: TimeOf) -> None:
        """The points of one object of readings: named metrics, then leaves."""
        spec = self.spec
        for name, path in spec.metrics:
            if not self.spend():
                return
            try:
                metric = metric_name(self.prefix + name, self.max_len)
            except Rejected as exc:
                self.rejects.append(exc.reject)
                continue
            raw = self.find(path, obj, f"metric {metric}:")
            if raw is not None:
                self.add(device, when, metric, raw)
        if spec.leaves:
            if type(obj) is dict or type(obj) is list:
                self.leaves(obj, "", 1, device, when)
            elif not spec.metrics:
                self.rejects.append(
                    Reject("bad_value", f"the readings are {kind(obj)}, not an object or array")
                )

    def leaves(self, obj: Any, prefix: str, depth: int, device: str, when: TimeOf) -> None:  # noqa: PLR0912
        # The hot loop of most routes, kept in one function (calls cost): a
        # finite float under a known kept name with no time problem and no
        # adjustment becomes a point here; anything else takes add().
        spec = self.spec
        strings = spec.on_off or spec.numeric_strings
        metrics = self.codec.metric_of if not self.prefix else {}
        max_len = self.max_len
        time_us, time_error = when
        fast = time_error is None and not spec.adjust
        points = self.points
        pairs = obj.items() if type(obj) is dict else enumerate(obj)
        for key, raw in pairs:
            kind_ = type(raw)
            if kind_ is float or kind_ is int or kind_ is bool:
                value: object = raw
            elif kind_ is dict or kind_ is list:
                self._nested(raw, f"{prefix}{key}", depth, device, when)
                if self.left < 0:
                    return
                continue
            elif kind_ is str and strings:
                value = _from_string(raw, spec.on_off, spec.numeric_strings)
                if value is None:
                    continue
            else:
                continue  # strings and nulls are not readings
            name = prefix + key if type(key) is str else f"{prefix}{key}"
            self.left -= 1
            if self.left < 0:
                self.out_of_leaves()
                return
            metric = metrics.get(name)
            if metric is None or len(metric) > max_len:
                try:
                    metric = self.metric(name)
                except Rejected as exc:
                    self.rejects.append(exc.reject)
                    continue
            if not metric:
                continue  # not kept
            if fast and kind_ is float and raw - raw == 0.0:
                points.append(new_point(Point, (time_us, device, metric, raw)))
            else:
                self.add(device, when, metric, value)

    def metric(self, name: str) -> str:
        """The metric of a leaf name, "" when it is not kept; raises Rejected.
        Names without a topic prefix are remembered (MappingCodec.metric_of)."""
        codec = self.codec
        metric = metric_name(self.prefix + name, self.max_len) if codec.kept(name) else ""
        if not self.prefix:
            if len(codec.metric_of) >= _KEPT_MAX:
                codec.metric_of.clear()
            codec.metric_of[name] = metric
        return metric

    def _nested(self, obj: Any, name: str, depth: int, device: str, when: TimeOf) -> None:
        spec = self.spec
        if depth < spec.max_depth:
            self.leaves(obj, name + spec.joiner, depth + 1, device, when)
        elif self.spend():
            self.rejects.append(
                Reject("too_deep", f"{show(name)} nests deeper than {spec.max_depth} levels")
            )

    def spend(self) -> bool:
        """Takes one from the budget of leaves; False when it is spent."""
        self.left -= 1
        if self.left >= 0:
            return True
        self.out_of_leaves()
        return False

    def out_of_leaves(self) -> None:
        """The one reject of a message whose leaves exceed the bound."""
        if not self.exhausted:
            self.exhausted = True
            self.rejects.append(
                Reject(
                    "too_many_leaves",
                    f"more than {self.bound} leaves or readings; the rest of the message is "
                    "dropped",
                )
            )

    def add(self, device: str, when: TimeOf, metric: str, raw: object) -> None:
        """One point, or its reject."""
        time_us, time_error = when
        try:
            if type(raw) is str and (self.spec.on_off or self.spec.numeric_strings):
                found = _from_string(raw, self.spec.on_off, self.spec.numeric_strings)
                raw = raw if found is None else found
            value = point_value(raw, metric)
            adjust = self.spec.adjust
            if adjust and metric in adjust:
                scale, offset = adjust[metric]
                value = value * scale + offset
                if value - value != 0.0:
                    raise Rejected("non_finite_value", f"{metric}: scaled value is not finite")
        except Rejected as exc:
            self.rejects.append(exc.reject)
            return
        if time_error is not None:
            self.rejects.append(time_error)
            return
        self.points.append(new_point(Point, (time_us, device, metric, value)))

    def items(self, doc: object, device: str, when: TimeOf) -> None:
        items = self.spec.items
        assert items is not None
        try:
            found = items.path.find(doc)
        except PathFailed as exc:
            self.rejects.append(Reject("path_error", f"items.path {exc}"))
            return
        if found is None and items.optional:
            return
        if type(found) is not list:
            what = "found nothing" if found is None else f"found {kind(found)}, not an array"
            self.rejects.append(Reject("missing_path", f"items.path {items.path.text!r} {what}"))
            return
        for index, item in enumerate(found):
            if self.left < 0:
                return
            self._item(item, index, device, when)

    def _item(self, item: object, index: int, device: str, when: TimeOf) -> None:
        items = self.spec.items
        assert items is not None
        if items.device is not None:
            found = self.find(items.device, item, f"item {index}: items.device")
            if found is None:
                return
            problem = id_problem(found, "device id", self.ctx.limits.max_id_len)
            if problem is not None:
                self.rejects.append(Reject("bad_device", f"item {index}: {problem}"))
                return
            device = found  # type: ignore[assignment]  # a str: id_problem checked it
        when = self.time_of(item, items.time, when)  # none of its own: the message's
        if items.name is None or items.value is None:
            self.readings(item, device, when)
            return
        if not self.spend():
            return
        name = self.find(items.name, item, f"item {index}: items.name")
        if name is None:
            return
        try:
            metric = metric_name(self.prefix + name if type(name) is str else name, self.max_len)
        except Rejected as exc:
            self.rejects.append(exc.reject)
            return
        raw = self.find(items.value, item, f"item {index}: items.value")
        if raw is not None:
            self.add(device, when, metric, raw)


def _from_string(text: str, on_off: bool, numeric: bool) -> float | bool | None:
    """A string as a reading, when the options say strings may be one."""
    if on_off:
        found = _ON_OFF.get(text.upper()) if len(text) <= 3 else None
        if found is not None:
            return found
    if numeric and len(text) <= 40 and _NUMBER.fullmatch(text):
        return float(text)  # may be inf ("1e999"): point_value rejects it
    return None
