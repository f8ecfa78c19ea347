"""ACL rules for the bridge's routes beyond the template's own topics.

mosquitto/cloud.acl grants devices ``telemetry/...``, ``points/...`` and
``sensors/...`` and the bridge the reading of them. A route on a firmware's
native topic (``tele/{device_id}/SENSOR``, ``zigbee2mqtt/{device_id}``) needs
two more grants, which `bridge broker render cloud` writes from the bridge's
configuration (mqtt.routes):

- the bridge reads the route's topics: ``topic read tele/+/SENSOR`` under its
  user;
- when each device logs in as itself (its username is its device id), it may
  publish on the route's topic under its own id: ``pattern write
  tele/%u/SENSOR`` ({site_id} and {metric} levels become ``+``).

A route whose publisher speaks for many devices (a gateway: the zigbee2mqtt
and openmqttgateway presets, a mapping route with ``device_path`` or
``device``, a line_protocol route with ``device_tag``) cannot be granted by pattern: its account is the operator's to
add, and `render` says so in a note (mosquitto/README.md shows the lines).

Routes are given as (topic template, codec, options), as in the bridge's
configuration, already validated by it. A template level that an ACL line
cannot hold (white space, ``%``) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.broker.errors import BrokerError

GRANTED_ROOTS = ("telemetry", "points", "sensors")  # first levels cloud.acl grants already
GATEWAY_PRESETS = ("zigbee2mqtt", "openmqttgateway")

RouteSpec = tuple[str, str, Mapping[str, Any]]  # topic template, codec, options


def is_gateway_route(codec: str, options: Mapping[str, Any]) -> bool:
    """Whether the route's messages come from one account speaking for many devices."""
    if codec == "line_protocol":
        return options.get("device_tag") is not None
    if codec != "mapping":
        return False
    return (
        options.get("preset") in GATEWAY_PRESETS
        or options.get("device_path") is not None
        or options.get("device") is not None
    )


def route_rules(routes: Iterable[RouteSpec], bridge_user: str) -> tuple[str, list[str]]:
    """The ACL block for the routes (empty when they need none), and notes for
    the operator."""
    patterns: list[str] = []
    reads: list[str] = []
    notes: list[str] = []
    for topic, codec, options in routes:
        levels = topic.split("/")
        if levels[0] in GRANTED_ROOTS:
            continue
        for level in levels:
            if not level or any(c.isspace() or c == "%" for c in level):
                raise BrokerError(f"route {topic!r}: level {level!r} cannot go in an ACL line")
        subscription = "/".join("+" if level.startswith("{") else level for level in levels)
        reads.append(f"topic read {subscription}")
        if is_gateway_route(codec, options):
            notes.append(
                f"route {topic!r}: its publisher speaks for many devices; give its account "
                f"`topic write {subscription}` in the ACL (mosquitto/README.md)"
            )
            continue
        if "{device_id}" not in levels:
            continue
        own = "/".join(
            "%u" if level == "{device_id}" else "+" if level.startswith("{") else level
            for level in levels
        )
        patterns.append(f"pattern write {own}")
    if not reads:
        return "", notes
    lines = [
        "# The bridge's own routes beyond telemetry/, points/ and sensors/ (its mqtt.routes),",
        "# written by `bridge broker render cloud`.",
    ]
    if patterns:
        lines += ["# Devices that log in as themselves publish under their own id:"]
        lines += list(dict.fromkeys(patterns))
    lines += ["# The bridge reads them:", f"user {bridge_user}", *dict.fromkeys(reads)]
    return "\n".join(lines) + "\n", notes


def insert(rules: str, block: str) -> str:
    """The rendered ACL with ``block`` before the gateways' section, so that
    the managed gateway blocks stay last (bridge.broker.acl's invariant)."""
    if not block:
        return rules
    at = rules.find("\n# Gateways:")
    if at < 0:
        return rules.rstrip("\n") + "\n\n" + block
    return rules[: at + 1] + block + rules[at:]
