"""Topic templates: which topics a route takes, and what their levels name.

A template is a topic with some whole levels replaced by fields::

    telemetry/{site_id}/{device_id}       subscribes to telemetry/+/+
    telemetry/{device_id}/{metric}        subscribes to telemetry/+/+
    sensors/{device_id}/data              subscribes to sensors/+/data

Fields: ``device_id`` (required), ``site_id`` and ``metric``, each at most
once and each a whole level. Other levels are literal. Invalid templates are
refused when the configuration is loaded (ValueError).

``match`` returns None when a topic does not have the template's shape (another
route may take it), and raises ``TopicError`` when it has the shape but a field
is not a valid id or metric name (the message is dead-lettered). The broker's
ACL vouches for the topic, so the device id found here is the message's.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from core.errors import BridgeError
from core.rules import ID, is_metric_name, metric_name_problem, show

FIELDS = ("device_id", "site_id", "metric")
_FIELD_LEVEL = re.compile(r"\{(\w*)\}")


class TopicFields(NamedTuple):
    device_id: str
    site_id: str | None
    metric: str | None


class TopicError(BridgeError):
    """The topic has a route's shape but a field is invalid: dead-letter the message."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TopicTemplate:
    """One route's topic template; ValueError when it is not a valid one."""

    def __init__(self, template: str, max_id_len: int = 128, max_metric_len: int = 64) -> None:
        self.template = template
        self._max_id_len = max_id_len
        self._max_metric_len = max_metric_len
        if template.startswith("$"):
            raise ValueError(f"template {template!r}: topics starting with $ are the broker's")
        levels = template.split("/")
        self._depth = len(levels)
        self._literals: tuple[tuple[int, str], ...] = ()
        fields: dict[str, int] = {}
        for index, level in enumerate(levels):
            name = _field_name(template, level)
            if name is None:
                self._literals += ((index, level),)
            elif name in fields:
                raise ValueError(f"template {template!r} has {{{name}}} more than once")
            else:
                fields[name] = index
        if "device_id" not in fields:
            raise ValueError(f"template {template!r} has no {{device_id}} level")
        self._device_at = fields["device_id"]
        self._site_at = fields.get("site_id")
        self._metric_at = fields.get("metric")
        self.subscription = "/".join(
            "+" if index in fields.values() else level for index, level in enumerate(levels)
        )

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"

    def match(self, topic: str) -> TopicFields | None:
        levels = topic.split("/", self._depth)  # one piece too many when it is deeper
        if len(levels) != self._depth:
            return None
        for index, literal in self._literals:
            if levels[index] != literal:
                return None
        device_id = self._id("device_id", levels[self._device_at])
        site_id = None if self._site_at is None else self._id("site_id", levels[self._site_at])
        metric = None
        if self._metric_at is not None:
            metric = levels[self._metric_at]
            if not is_metric_name(metric, self._max_metric_len):
                raise TopicError("bad_topic", metric_name_problem(metric, self._max_metric_len))
        return TopicFields(device_id, site_id, metric)

    def _id(self, field: str, value: str) -> str:
        if len(value) > self._max_id_len:
            raise TopicError(
                "bad_topic", f"{field} {show(value)} is longer than {self._max_id_len} characters"
            )
        if ID.fullmatch(value) is None:
            raise TopicError(
                "bad_topic", f"{field} {show(value)} must be 1 or more of [A-Za-z0-9_.:-]"
            )
        return value


def _field_name(template: str, level: str) -> str | None:
    """The field a template level names, None for a literal level; ValueError
    when the level is neither."""
    match = _FIELD_LEVEL.fullmatch(level)
    if match is not None:
        name = match.group(1)
        if name not in FIELDS:
            raise ValueError(
                f"template {template!r}: unknown field {{{name}}} (known: "
                + ", ".join(f"{{{field}}}" for field in FIELDS)
                + ")"
            )
        return name
    if "{" in level or "}" in level:
        raise ValueError(
            f"template {template!r}: level {level!r} mixes a field with text; "
            "a field must be a whole level"
        )
    if "+" in level or "#" in level:
        raise ValueError(f"template {template!r}: MQTT wildcards (+, #) are not allowed")
    if not level:
        raise ValueError(f"template {template!r} has an empty level")
    if "\x00" in level:
        raise ValueError(f"template {template!r} contains a NUL character")
    return None
