"""The cloud and edge broker configs, rendered from the templates in mosquitto/.

A template holds ``{{ name }}`` fields; rendering fails on a field without a
value, and on a value holding a line break (which could smuggle in a
directive). What is written, in the --etc folder and at --out:

    cloud   --out (the drop-in, 0644), acl (the template, with the grants of
            the bridge's routes beyond telemetry/ (route_acl), keeping the
            managed gateway entries of an existing file), passwd (empty, if missing),
            passwd.gate (a link to passwd, i.e. open, if missing)
    edge    --out (the drop-in, 0640: it holds the gateway's cloud password),
            acl, passwd (empty, if missing)

Certificates are not made here (`bridge broker ca`); missing ones are listed
in the notes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.broker import acl, gate, passwd, route_acl
from bridge.broker.accounts import check_id, check_username
from bridge.broker.errors import BrokerError
from bridge.broker.files import read_text, share_with_group, write_atomic

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "mosquitto"
_FIELD = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")

# Measured on Mosquitto 2.0.11 (64-bit): a queued QoS 1 message costs about
# 330 bytes besides its topic and payload.
MESSAGE_OVERHEAD = 330
TOPIC_BYTES = 40  # a generous telemetry/<site>/<device>
READING_BYTES = 120  # a single-reading JSON payload


@dataclass
class Written:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path, what happened)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Queues:
    messages: int = 1_000_000
    megabytes: int = 256

    @property
    def bytes(self) -> int:
        return self.megabytes * 1024 * 1024

    def check(self) -> None:
        if self.messages < 1000:
            raise BrokerError("--max-queued-messages must be at least 1000")
        if self.megabytes < 1:
            raise BrokerError("--max-queued-mb must be at least 1")

    def readings_held(self) -> int:
        """How many single-reading messages fit before either limit."""
        return min(self.messages, self.bytes // READING_BYTES)

    def memory_note(self) -> str:
        worst = self.messages * (MESSAGE_OVERHEAD + TOPIC_BYTES) + self.bytes
        typical = self.readings_held() * (MESSAGE_OVERHEAD + TOPIC_BYTES + READING_BYTES)
        return (
            f"at most ~{worst / 1e6:.0f} MB for one full session, "
            f"~{typical / 1e6:.0f} MB when full of {READING_BYTES}-byte readings"
        )

    def outage_note(self) -> str:
        held = self.readings_held()
        parts = []
        for rate in (10, 100, 1000):
            seconds = held / rate
            span = f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.0f} min"
            parts.append(f"{span} at {rate} msg/s")
        return ", ".join(parts) + f" ({held:,} {READING_BYTES}-byte readings)"


@dataclass(frozen=True)
class CloudOptions:
    etc: Path
    out: Path
    port: int = 8883
    services_port: int = 8884
    local_port: int = 1883
    bind: str | None = None
    bridge_user: str = "bridge"
    api_user: str = "api"
    alerts_user: str = "alerts"
    require_client_cert: bool = False
    queues: Queues = Queues()
    broker_group: str | None = "mosquitto"
    templates: Path = TEMPLATES
    routes: tuple[route_acl.RouteSpec, ...] = ()  # the bridge's mqtt.routes: route_acl


@dataclass(frozen=True)
class EdgeOptions:
    etc: Path
    out: Path
    site: str
    cloud: str
    gateway_user: str
    gateway_password: str
    port: int = 1883
    bind: str | None = None
    queues: Queues = Queues()
    broker_group: str | None = "mosquitto"
    templates: Path = TEMPLATES


def fill(template: str, values: Mapping[str, str], name: str) -> str:
    """The template with every {{ field }} replaced; BrokerError if one has no value."""
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise BrokerError(f"the value of {key} for {name} holds a line break")
    missing = sorted({m.group(1) for m in _FIELD.finditer(template)} - set(values))
    if missing:
        raise BrokerError(f"template {name} has fields without a value: {', '.join(missing)}")
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def _template(folder: Path, name: str) -> str:
    """The template ``name``, headed by a line saying the output is generated."""
    path = folder / name
    if not path.is_file():
        raise BrokerError(
            f"template {path} not found; pass --templates with the mosquitto/ folder of the "
            "bridge's source tree"
        )
    kind = name.split(".", maxsplit=1)[0]
    head = f"# Written by `bridge broker render {kind}` from {path}; edits are overwritten.\n"
    return head + read_text(path, "template")


def _listener(port: int, bind: str | None) -> str:
    if not 1 <= port <= 65535:
        raise BrokerError(f"port {port} is not between 1 and 65535")
    if bind is not None and (not bind or any(c.isspace() for c in bind)):
        raise BrokerError(f"--bind {bind!r} is not an address")
    return f"{port} {bind}" if bind else str(port)


def _check_etc(etc: Path) -> None:
    if not etc.is_absolute():
        raise BrokerError(f"--etc {etc} must be an absolute path (the broker reads it from /)")
    if not etc.is_dir():
        raise BrokerError(f"--etc folder {etc} does not exist; create it first (mkdir -p {etc})")


def render_cloud(opts: CloudOptions) -> Written:
    _check_etc(opts.etc)
    opts.queues.check()
    check_username(opts.bridge_user, "bridge user")
    check_username(opts.api_user, "API user")
    check_username(opts.alerts_user, "alerts user")
    if opts.api_user == opts.bridge_user:
        raise BrokerError(
            "--api-user and --bridge-user must differ: the bridge reads, the API writes"
        )
    if opts.alerts_user in (opts.bridge_user, opts.api_user):
        raise BrokerError("--alerts-user must differ from --bridge-user and --api-user")
    ports = {opts.port, opts.services_port, opts.local_port}
    if len(ports) != 3:
        raise BrokerError("--port, --services-port and --local-port must differ")
    values = {
        "etc": str(opts.etc),
        "device_listener": _listener(opts.port, opts.bind),
        "services_listener": _listener(opts.services_port, opts.bind),
        "local_port": _listener(opts.local_port, None),
        "require_client_cert": "true" if opts.require_client_cert else "false",
        "max_queued_messages": str(opts.queues.messages),
        "max_queued_bytes": str(opts.queues.bytes),
        "queue_memory_note": opts.queues.memory_note(),
        "bridge_user": opts.bridge_user,
        "api_user": opts.api_user,
        "alerts_user": opts.alerts_user,
    }
    conf = fill(_template(opts.templates, "cloud.conf"), values, "cloud.conf")
    rules = fill(_template(opts.templates, "cloud.acl"), values, "cloud.acl")
    done = Written()
    block, route_notes = route_acl.route_rules(opts.routes, opts.bridge_user)
    rules = route_acl.insert(rules, block)
    done.notes.extend(route_notes)
    acl_file = opts.etc / "acl"
    kept: dict[str, str] = {}
    if acl_file.exists():
        _, kept = acl.split(read_text(acl_file, "ACL file"))
    write_atomic(acl_file, acl.join(rules, kept), 0o640)
    share_with_group(acl_file, opts.broker_group)
    done.files.append((acl_file, f"written, {len(kept)} gateway entries kept"))
    _password_file(opts.etc / "passwd", opts.broker_group, done)
    link = opts.etc / "passwd.gate"
    if not link.is_symlink() and not link.exists():
        gate.open_(link, opts.etc / "passwd")
        done.files.append((link, "created, open (a link to passwd)"))
    else:
        state = gate.state(link, opts.etc / "passwd")
        done.files.append((link, f"kept, {state}"))
        if state == "not a gate":
            done.notes.append(f"{link} is not a link made by `bridge broker gate`; run gate open")
    write_atomic(opts.out, conf, 0o644)
    done.files.append((opts.out, "written"))
    missing = [n for n in ("ca.crt", "server.crt", "server.key") if not (opts.etc / n).exists()]
    if missing:
        done.notes.append(
            f"missing in {opts.etc}: {', '.join(missing)}; for development: "
            f"bridge broker ca --out {opts.etc} --host <broker host name>"
        )
    return done


def render_edge(opts: EdgeOptions) -> Written:
    _check_etc(opts.etc)
    opts.queues.check()
    check_id(opts.site, "site id")
    if ":" in opts.site:
        raise BrokerError("the site id may not contain ':' here (it is matched in the ACL)")
    check_username(opts.gateway_user, "gateway user")
    host, sep, port = opts.cloud.rpartition(":")
    if not sep or not host or not port.isdigit() or any(c.isspace() for c in host):
        raise BrokerError(f"--cloud {opts.cloud!r} must be HOST:PORT (e.g. broker.example:8883)")
    if not opts.gateway_password or any(c.isspace() for c in opts.gateway_password):
        raise BrokerError("the gateway password is empty or holds white space")
    values = {
        "etc": str(opts.etc),
        "site": opts.site,
        "device_listener": _listener(opts.port, opts.bind),
        "cloud_address": opts.cloud,
        "gateway_user": opts.gateway_user,
        "gateway_password": opts.gateway_password,
        "max_queued_messages": str(opts.queues.messages),
        "max_queued_bytes": str(opts.queues.bytes),
        "queue_memory_note": opts.queues.memory_note(),
        "outage_note": opts.queues.outage_note(),
    }
    conf = fill(_template(opts.templates, "edge.conf"), values, "edge.conf")
    rules = fill(_template(opts.templates, "edge.acl"), values, "edge.acl")
    done = Written()
    acl_file = opts.etc / "acl"
    write_atomic(acl_file, rules, 0o640)
    share_with_group(acl_file, opts.broker_group)
    done.files.append((acl_file, "written"))
    _password_file(opts.etc / "passwd", opts.broker_group, done)
    write_atomic(opts.out, conf, 0o640)
    share_with_group(opts.out, opts.broker_group)
    done.files.append((opts.out, "written (holds the gateway password: 0640)"))
    if not (opts.etc / "cloud-ca.crt").exists():
        done.notes.append(
            f"missing: {opts.etc / 'cloud-ca.crt'}, the CA that signed the cloud broker's "
            "certificate (its ca.crt)"
        )
    return done


def _password_file(path: Path, group: str | None, done: Written) -> None:
    if passwd.create_empty(path):
        share_with_group(path, group)
        done.files.append((path, "created, empty: add devices with bridge broker provision"))
    else:
        done.files.append((path, f"kept, {len(passwd.users(path))} users"))
