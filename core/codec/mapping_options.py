"""The mapping codec's options, as a route gives them in TOML, and their
compiled form.

    [[mqtt.routes]]
    topic = "sensors/{device_id}/json"
    codec = "mapping"
    options = { preset = "flat", time_path = "t", scale = { temp_dC = 0.1 } }

A preset (core.codec.presets) gives a whole set of options; keys beside it
replace the preset's. Unknown keys are refused, every expression is compiled
and every pattern, time zone and format checked here, once, so that a bad one
is a configuration error naming the key (``compile_options`` raises
ValueError) and decoding never meets one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.codec.mapping_time import TimeReader, time_reader, zone
from core.codec.paths import JsonPath
from core.codec.presets import PRESETS
from core.rules import ID


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemsOptions(_Options):
    path: str = Field(description="Path to the list of readings.")
    name: str | None = Field(
        None, description="Per item: path to the metric name (one point per item, with value)."
    )
    value: str | None = Field(None, description="Per item: path to the value (with name).")
    time: str | None = Field(None, description="Per item: path to its time (else the message's).")
    device: str | None = Field(None, description="Per item: path to its device id.")
    optional: bool = Field(False, description="No list at the path is no readings (else reject).")


class MappingOptions(_Options):
    preset: str | None = Field(None, description="A preset's options; the keys beside it win.")
    device: str | None = Field(None, description="A constant device id for every point.")
    device_path: str | None = Field(None, description="Path to the device id in the payload.")
    time_path: str | None = Field(None, description="Path to the time (default: receive time).")
    time_format: str = Field("auto", description="auto, rfc3339, epoch_s/ms/us/ns or a %-pattern.")
    time_zone: str = Field("UTC", description="Zone of times written without an offset.")
    time_optional: bool = Field(
        False, description="A time path that finds nothing means the receive time (else reject)."
    )
    root: str | None = Field(None, description="Path to the object of readings (default: all).")
    metrics: dict[str, str] = Field(
        default_factory=dict, description="Metric name -> path, relative to the readings."
    )
    leaves: bool | None = Field(
        None,
        description="Every numeric or boolean leaf is a metric (default: unless metrics or "
        "items.name say what to read).",
    )
    joiner: str = Field(".", min_length=1, max_length=4, description="Joins nested key names.")
    include: list[str] = Field(default_factory=list, description="Leaf names kept (globs).")
    exclude: list[str] = Field(default_factory=list, description="Leaf names dropped (globs).")
    on_off: bool = Field(False, description='Strings "ON"/"OFF" (any case) are 1 and 0.')
    numeric_strings: bool = Field(False, description='Strings such as "21.5" are numbers.')
    topic_metric_prefix: bool = Field(
        False, description="Metric names start with the topic's {metric} level and the joiner."
    )
    scale: dict[str, float] = Field(default_factory=dict, description="Metric -> factor.")
    offset: dict[str, float] = Field(default_factory=dict, description="Metric -> addend.")
    max_depth: int = Field(8, ge=1, le=64, description="Deeper objects are rejected (too_deep).")
    max_leaves: int = Field(
        1000, ge=1, le=100_000, description="Leaves past this are rejected (too_many_leaves)."
    )
    items: ItemsOptions | None = Field(None, description="Arrays of readings.")


@dataclass(frozen=True, slots=True)
class Items:
    path: JsonPath
    name: JsonPath | None
    value: JsonPath | None
    time: JsonPath | None
    device: JsonPath | None
    optional: bool


@dataclass(frozen=True, slots=True)
class Spec:
    """Compiled options: what MappingCodec.decode reads."""

    device: str | None
    device_path: JsonPath | None
    time_path: JsonPath | None
    read_time: TimeReader
    time_optional: bool
    root: JsonPath | None
    metrics: tuple[tuple[str, JsonPath], ...]
    leaves: bool
    joiner: str
    keep: re.Pattern[str] | None  # leaf names to keep, None: all
    drop: re.Pattern[str] | None  # leaf names to drop, None: none
    on_off: bool
    numeric_strings: bool
    topic_metric_prefix: bool
    adjust: dict[str, tuple[float, float]]  # metric -> (scale, offset)
    max_depth: int
    max_leaves: int
    items: Items | None
    preset: str | None


def compile_options(options: Mapping[str, Any], max_id_len: int = 128) -> Spec:
    """Validates and compiles a route's options; ValueError saying which key is wrong."""
    merged = dict(options)
    preset = merged.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(
                f"options.preset: unknown preset {preset!r} (known: {', '.join(sorted(PRESETS))})"
            )
        merged = {**PRESETS[preset], **merged}
    try:
        opts = MappingOptions.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(_problems(exc)) from None
    if opts.device is not None and opts.device_path is not None:
        raise ValueError("options.device and options.device_path: give one, not both")
    if opts.device is not None and (
        not 1 <= len(opts.device) <= max_id_len or ID.fullmatch(opts.device) is None
    ):
        raise ValueError(f"options.device: {opts.device!r} is not a valid device id")
    items = None
    if opts.items is not None:
        it = opts.items
        if (it.name is None) != (it.value is None):
            raise ValueError("options.items: name and value go together (one point per item)")
        items = Items(
            _path("items.path", it.path),
            _maybe("items.name", it.name),
            _maybe("items.value", it.value),
            _maybe("items.time", it.time),
            _maybe("items.device", it.device),
            it.optional,
        )
    tz = _zone(opts.time_zone)
    try:
        read_time = time_reader(opts.time_format, tz)
    except ValueError as exc:
        raise ValueError(f"options.time_format: {exc}") from None
    metrics = tuple((name, _path(f"metrics.{name}", text)) for name, text in opts.metrics.items())
    root = _maybe("root", opts.root)
    device_path = _maybe("device_path", opts.device_path)
    time_path = _maybe("time_path", opts.time_path)
    # The time and the device are not readings, when they lie among them.
    found_in_readings = [_relative_name(p, root, opts.joiner) for p in (time_path, device_path)]
    if items is not None and items.name is None:
        found_in_readings += [
            _relative_name(p, None, opts.joiner) for p in (items.time, items.device)
        ]
    not_readings = [name for name in found_in_readings if name is not None]
    adjust = {
        name: (opts.scale.get(name, 1.0), opts.offset.get(name, 0.0))
        for name in {*opts.scale, *opts.offset}
    }
    return Spec(
        device=opts.device,
        device_path=device_path,
        time_path=time_path,
        read_time=read_time,
        time_optional=opts.time_optional,
        root=root,
        metrics=metrics,
        leaves=_leaves_by_default(opts) if opts.leaves is None else opts.leaves,
        joiner=opts.joiner,
        keep=_globs(opts.include),
        drop=_globs(opts.exclude, not_readings),
        on_off=opts.on_off,
        numeric_strings=opts.numeric_strings,
        topic_metric_prefix=opts.topic_metric_prefix,
        adjust=adjust,
        max_depth=opts.max_depth,
        max_leaves=opts.max_leaves,
        items=items,
        preset=preset,
    )


def _leaves_by_default(opts: MappingOptions) -> bool:
    """Every leaf is read unless the options name what to read: metrics, or
    one point per item."""
    return not opts.metrics and (opts.items is None or opts.items.name is None)


def _path(key: str, text: str) -> JsonPath:
    try:
        return JsonPath(text)
    except ValueError as exc:
        raise ValueError(f"options.{key}: {exc}") from None


def _maybe(key: str, text: str | None) -> JsonPath | None:
    return None if text is None else _path(key, text)


def _zone(name: str) -> tzinfo:
    try:
        return zone(name)
    except ValueError as exc:
        raise ValueError(f"options.time_zone: {exc}") from None


def _globs(patterns: list[str], names: list[str] | None = None) -> re.Pattern[str] | None:
    """One regex for some globs (``BME280.*``) and some literal names."""
    parts = [fnmatch.translate(p) for p in patterns] + [re.escape(n) + r"\Z" for n in names or ()]
    return re.compile("|".join(f"(?:{part})" for part in parts)) if parts else None


def _relative_name(path: JsonPath | None, root: JsonPath | None, joiner: str) -> str | None:
    """The leaf name a plain path has among the readings, if it lies among them."""
    if path is None or path.fields is None:
        return None
    start: tuple[str, ...] = ()
    if root is not None:
        if root.fields is None:
            return None
        start = root.fields
    if path.fields[: len(start)] != start or len(path.fields) == len(start):
        return None
    return joiner.join(path.fields[len(start) :])


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key (known: {', '.join(MappingOptions.model_fields)})"
        parts.append(f"options.{where}: {message}")
    return "; ".join(parts)
