"""The OPC UA part of the configuration: ``[[opcua.servers]]``.

A server has its URL, security and login, and node groups; a group reads its
nodes one way (``subscription`` or ``poll``) with one set of parameters; a
node is named by NodeId (``ns=2;s=Pump1.Flow``) or by browse path from the
Objects folder (``2:Plant/2:Pump1/2:Flow``) and mapped to a device and a
metric. Everything a bad value could break later is checked at load, one
line per problem: NodeId syntax, security policy and mode that do not go
together, missing certificate files, a device's metric mapped twice.

Kept free of asyncua so that ``check-config`` and ``--help`` stay light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.rules import ID, config_metric_name

# ns=<index>; or nsu=<uri>; (optional), then i=<number>, s=<string>, g=<guid> or b=<base64>.
NODE_ID = re.compile(
    r"(?:(?:ns=\d{1,5}|nsu=[^;]+);)?"
    r"(?:i=\d{1,10}|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|b=[A-Za-z0-9+/]+={0,2})"
)
# One browse path element: <namespace index>:<browse name>.
PATH_ELEMENT = re.compile(r"\d{1,5}:[^/]+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _id(value: str, what: str) -> str:
    if len(value) > 128 or ID.fullmatch(value) is None:
        raise ValueError(f"{what} {value!r} must be 1 to 128 of [A-Za-z0-9_.:-]")
    return value


class OpcUaNode(_Section):
    node_id: str | None = Field(
        None, description="NodeId, e.g. ns=2;s=Pump1.Flow, ns=3;i=1001, nsu=urn:plant;s=Flow."
    )
    path: str | None = Field(
        None,
        description="Browse path from the Objects folder, each element <ns>:<name>, e.g. "
        "2:Plant/2:Pump1/2:Flow (instead of node_id).",
    )
    device_id: str | None = Field(None, description="Device id (default: the group's).")
    metric: str = Field(description="Metric name; an array's elements get .0, .1, ...")

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        if value is not None and NODE_ID.fullmatch(value) is None:
            raise ValueError(
                f"unknown NodeId format {value!r}: expected [ns=<index>;]i=<number>, s=<string>, "
                "g=<guid> or b=<base64>, e.g. ns=2;s=Pump1.Flow"
            )
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            bad = [p for p in value.strip("/").split("/") if PATH_ELEMENT.fullmatch(p) is None]
            if bad or not value.strip("/"):
                raise ValueError(
                    f"browse path {value!r}: each element must be <namespace index>:<name>, "
                    "e.g. 2:Plant/2:Pump1/2:Flow"
                )
        return value

    @field_validator("device_id")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return None if value is None else _id(value, "device_id")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return config_metric_name(value)

    @model_validator(mode="after")
    def _one_name(self) -> OpcUaNode:
        if (self.node_id is None) == (self.path is None):
            raise ValueError(f"{self.metric}: give either node_id or path (exactly one)")
        return self

    @property
    def name(self) -> str:
        """How the node is named in the configuration."""
        return self.node_id if self.node_id is not None else f"path {self.path}"


class OpcUaGroup(_Section):
    mode: Literal["subscription", "poll"] = Field(
        "subscription",
        description="subscription: the server reports changes (monitored items); poll: read "
        "every interval_s.",
    )
    device_id: str | None = Field(None, description="Device id of nodes that name none.")
    interval_s: float = Field(
        1.0,
        ge=0,
        description="Sampling interval (subscription; 0: the server's fastest) or poll interval.",
    )
    publishing_interval_s: float = Field(
        1.0, gt=0, description="How often the server sends what changed (subscription)."
    )
    queue_size: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Changes the server keeps per node between two publishes (subscription); "
        "beyond it the oldest are discarded by the server.",
    )
    deadband: Literal["none", "absolute", "percent"] = Field(
        "none",
        description="none, absolute (a change smaller than deadband_value is not reported) "
        "or percent (of the node's EURange).",
    )
    deadband_value: float = Field(0.0, ge=0, description="The deadband, in units or percent.")
    timestamp: Literal["source", "server"] = Field(
        "source",
        description="Which timestamp a value is stored with: source (the device's) or server "
        "(when the server saw it); the other one when the chosen one is missing.",
    )
    nodes: list[OpcUaNode] = Field(min_length=1, description="The nodes and their metrics.")

    @field_validator("device_id")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return None if value is None else _id(value, "device_id")

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaGroup:
        if self.mode == "poll" and self.interval_s <= 0:
            raise ValueError("a poll group needs interval_s > 0")
        if self.deadband == "percent" and self.deadband_value > 100:
            raise ValueError(f"a percent deadband must be 0-100, not {self.deadband_value:g}")
        if self.deadband != "none" and self.mode == "poll":
            raise ValueError("deadband is for subscription groups; a poll group reads every value")
        missing = [n.metric for n in self.nodes if n.device_id is None and self.device_id is None]
        if missing:
            raise ValueError(
                f"nodes {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''} have no "
                "device_id and their group names none"
            )
        return self

    def device_of(self, node: OpcUaNode) -> str:
        device = node.device_id or self.device_id
        assert device is not None  # checked above
        return device


class OpcUaServer(_Section):
    name: str = Field(description="This server's name in logs, metrics and /healthz.")
    url: str = Field(description="Endpoint URL, opc.tcp://host:port[/path].")
    security_policy: Literal["None", "Basic256Sha256"] = Field(
        "None", description="None or Basic256Sha256."
    )
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        "None", description="None (with policy None), Sign or SignAndEncrypt (Basic256Sha256)."
    )
    certificate: Path | None = Field(
        None, description="The agent's own certificate (DER or PEM), for Basic256Sha256."
    )
    private_key: Path | None = Field(None, description="Its private key (PEM or DER).")
    server_certificate: Path | None = Field(
        None,
        description="The server certificate the agent trusts (DER or PEM); any other is "
        "refused. With trust_on_first_use, where the first one seen is saved.",
    )
    trust_on_first_use: bool = Field(
        False,
        description="Trust and save the server's certificate the first time (when "
        "server_certificate does not exist yet), then only that one. Off by default.",
    )
    username: str | None = Field(None, description="User name, when the server wants a login.")
    password: SecretStr | None = Field(None, description="Password.")
    timeout_s: float = Field(5.0, gt=0, description="Timeout of one request.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First delay after a lost session.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest delay, doubling to it.")
    max_array_elements: int = Field(
        64,
        ge=0,
        le=10_000,
        description="An array value stores its first elements as <metric>.0, <metric>.1, ... "
        "up to this many; the rest are counted and skipped.",
    )
    groups: list[OpcUaGroup] = Field(min_length=1, description="Node groups.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _id(value, "server name")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if re.fullmatch(r"opc\.tcp://[^/:]+(:\d{1,5})?(/.*)?", value) is None:
            raise ValueError(f"url {value!r} must be opc.tcp://host[:port][/path]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaServer:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(
                f"bad security mode {self.security_mode} with security_policy "
                f"{self.security_policy}: policy None goes with mode None, Basic256Sha256 with "
                "Sign or SignAndEncrypt"
            )
        if self.security_policy != "None":
            for key in ("certificate", "private_key"):
                path = getattr(self, key)
                if path is None:
                    raise ValueError(f"security_policy {self.security_policy} needs {key}")
                if not path.is_file():
                    raise ValueError(f"{key} {path} does not exist")
            if self.server_certificate is None:
                raise ValueError(
                    f"security_policy {self.security_policy} needs server_certificate (the "
                    "trusted one, or with trust_on_first_use where to save the first one seen)"
                )
            if not self.trust_on_first_use and not self.server_certificate.is_file():
                raise ValueError(
                    f"server_certificate {self.server_certificate} does not exist (set "
                    "trust_on_first_use = true to save the first one seen there)"
                )
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        return self

    @model_validator(mode="after")
    def _mapping(self) -> OpcUaServer:
        suffix = len(str(max(0, self.max_array_elements - 1))) + 1
        seen_nodes: set[str] = set()
        seen_metrics: set[tuple[str, str]] = set()
        for group in self.groups:
            for node in group.nodes:
                if node.name in seen_nodes:
                    raise ValueError(f"node {node.name} is mapped twice")
                seen_nodes.add(node.name)
                key = (group.device_of(node), node.metric)
                if key in seen_metrics:
                    raise ValueError(f"device {key[0]}: metric {key[1]!r} is mapped twice")
                seen_metrics.add(key)
                if len(node.metric) + suffix > 64:
                    raise ValueError(
                        f"metric {node.metric!r}: with an array index (.{self.max_array_elements - 1}) "
                        "it would pass 64 characters; shorten it or lower max_array_elements"
                    )
        return self


class OpcUaSettings(_Section):
    servers: list[OpcUaServer] = Field(
        default_factory=list, description="OPC UA servers (PLCs, SCADA, historians)."
    )

    @model_validator(mode="after")
    def _unique(self) -> OpcUaSettings:
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError("server names must be unique")
        return self
