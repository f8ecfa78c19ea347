"""The arguments of each `bridge broker` action, with their help: what the
user reads. The actions themselves are in bridge.broker.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.broker import render

ETC = Path("/etc/mosquitto/bridge")
PID_HELP = (
    "then reload the broker: SIGHUP to the pid in this file (Debian: /run/mosquitto/mosquitto.pid)"
)


def add_actions(actions: Any) -> None:
    """Adds ca, provision, revoke, gate, render and check to the `broker` subparsers."""
    _add_ca(actions)
    _add_provision(actions)
    _add_revoke(actions)
    _add_gate(actions)
    _add_render(actions)
    _add_check(actions)


def _add_check(actions: Any) -> None:
    p = actions.add_parser(
        "check",
        help="check the paths of a Mosquitto config before the broker starts",
        description="Reads a Mosquitto config and every *.conf of its include_dir, as the broker "
        "does, and checks each path it names: password files, ACLs, certificates and keys, "
        "plugins (files that must exist and be readable), persistence_location (a folder the "
        "broker must be able to write), include_dir and the folder of a log file. Readable and "
        "writable mean by the user the broker runs as: run as root, it drops to `user` "
        "(default mosquitto) before reading them. Prints one line per problem and exits 1 if "
        "there is any; changes nothing. Run it before every start (systemd ExecStartPre).",
    )
    p.add_argument(
        "conf",
        nargs="?",
        type=Path,
        default=Path("/etc/mosquitto/mosquitto.conf"),
        metavar="FILE",
        help="the broker's main config, as passed to mosquitto -c "
        "(default /etc/mosquitto/mosquitto.conf)",
    )


def _add_ca(actions: Any) -> None:
    p = actions.add_parser(
        "ca",
        help="make a development CA, a server certificate and client certificates",
        description="Makes a development CA (or reuses the one in --out), issues the broker's "
        "server certificate for every --host (as subjectAltNames), and one client certificate "
        "per --client (CN = the name), for the mutual-TLS services listener. ECDSA P-256 keys, "
        "made with the openssl command. For development and tests: in production, use your "
        "own PKI.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="host name or IP address the broker is reached at; repeat for several "
        "(default: localhost and 127.0.0.1)",
    )
    p.add_argument(
        "--client", action="append", default=[], metavar="NAME", help="issue a client certificate"
    )
    p.add_argument(
        "--days", type=int, default=825, help="validity of the issued certificates (default 825)"
    )
    p.add_argument(
        "--broker-group",
        default="mosquitto",
        metavar="GROUP",
        help="run as root, give this group read access to server.key (default mosquitto)",
    )


def _add_provision(actions: Any) -> None:
    p = actions.add_parser(
        "provision",
        help="create or replace a user with a generated password (printed once)",
        description="Creates the user NAME, or gives it a new password, with mosquitto_passwd; "
        "prints the generated password once, on stdout alone. For a device, NAME is its "
        "device id, the last level of its topics. --gateway SITE makes NAME a gateway that may "
        "publish telemetry/SITE/+ for the devices behind it (an entry in --acl). With --reload, "
        "the broker rereads its files at once: the new password works, the old one is refused.",
    )
    p.add_argument("name", metavar="NAME", help="device id, gateway or service user name")
    p.add_argument("--passwd", type=Path, required=True, metavar="FILE", help="password file")
    p.add_argument(
        "--gateway", metavar="SITE", help="NAME is the gateway of site SITE (needs --acl)"
    )
    p.add_argument("--acl", type=Path, metavar="FILE", help="the cloud broker's ACL file")
    p.add_argument("--reload", type=Path, metavar="PIDFILE", help=PID_HELP)


def _add_revoke(actions: Any) -> None:
    p = actions.add_parser(
        "revoke",
        help="remove a user (and its gateway entry)",
        description="Removes the user NAME from the password file with mosquitto_passwd -D, and "
        "its gateway entry from --acl if it has one. With --reload, the broker rereads its "
        "files at once and disconnects NAME if it is connected.",
    )
    p.add_argument("name", metavar="NAME", help="device id, gateway or service user name")
    p.add_argument("--passwd", type=Path, required=True, metavar="FILE", help="password file")
    p.add_argument("--acl", type=Path, metavar="FILE", help="the cloud broker's ACL file")
    p.add_argument("--reload", type=Path, metavar="PIDFILE", help=PID_HELP)


def _add_gate(actions: Any) -> None:
    p = actions.add_parser(
        "gate",
        help="open or close the login gate of the device listener",
        description="Mosquitto 2.0.11 forgets shared subscriptions on a restart, and drops what "
        "devices and gateways publish until the bridge has subscribed again. The device "
        "listener therefore reads its logins from a gate, a link to the password file: close "
        "it before the broker starts, open it once the bridge is ready (--when-ready waits for "
        "/readyz, which answers 200 only after the bridge has subscribed). Gateways refused "
        "meanwhile keep their queues and retry.",
    )
    p.add_argument("action", choices=["open", "close", "status"])
    p.add_argument(
        "--gate",
        type=Path,
        default=ETC / "passwd.gate",
        metavar="LINK",
        help=f"the gate (default {ETC / 'passwd.gate'})",
    )
    p.add_argument(
        "--passwd",
        type=Path,
        default=ETC / "passwd",
        metavar="FILE",
        help=f"the password file the open gate points at (default {ETC / 'passwd'})",
    )
    p.add_argument(
        "--when-ready",
        action="append",
        default=[],
        metavar="URL",
        help="open: first wait until this URL answers 200 (each bridge worker's /readyz); repeat",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="open: give up waiting after this long, leaving the gate closed (default 600)",
    )
    p.add_argument("--reload", type=Path, metavar="PIDFILE", help=PID_HELP)


def _add_render(actions: Any) -> None:
    p = actions.add_parser(
        "render",
        help="write a cloud or edge broker config from the templates",
        description="Fills in mosquitto/cloud.conf or mosquitto/edge.conf (and their ACLs) and "
        "writes a drop-in for Debian's /etc/mosquitto/mosquitto.conf, plus the ACL, an empty "
        "password file if there is none, and (cloud) an open login gate if there is none. The "
        "ACL is rewritten from the template; gateway entries made by provision are kept.",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    cloud = kinds.add_parser(
        "cloud",
        help="the cloud broker",
        description="TLS listener for devices and gateways (--port), mutual-TLS listener for "
        "remote bridges (--services-port), plain loopback listener for a local bridge "
        "(--local-port). No anonymous access on any of them.",
    )
    cloud.add_argument(
        "--port", type=int, default=8883, metavar="N", help="devices, TLS (default 8883)"
    )
    cloud.add_argument(
        "--services-port",
        type=int,
        default=8884,
        metavar="N",
        help="bridges, mutual TLS (default 8884)",
    )
    cloud.add_argument(
        "--local-port", type=int, default=1883, metavar="N", help="loopback, plain (default 1883)"
    )
    cloud.add_argument(
        "--bridge-user", default="bridge", metavar="NAME", help="the bridge's user (default bridge)"
    )
    cloud.add_argument(
        "--api-user",
        default="api",
        metavar="NAME",
        help="the read API's user, which may publish telemetry for any device when the API "
        "ingests through the broker (default api)",
    )
    cloud.add_argument(
        "--alerts-user",
        default="alerts",
        metavar="NAME",
        help="the user that may read every alarm transition on alerts/# (an operations "
        "console, a pager); a device reads only its own alerts/<site>/<device> (default alerts)",
    )
    cloud.add_argument(
        "--require-client-cert",
        action="store_true",
        help="devices too must present a certificate signed by the CA",
    )
    edge = kinds.add_parser(
        "edge",
        help="a gateway's broker",
        description="A listener for local devices (password and per-device ACL) and a bridge "
        "forwarding telemetry/SITE/+ to the cloud at QoS 1, MQTT v5, over TLS, with a "
        "persistent session and a queue holding outages.",
    )
    edge.add_argument("--site", required=True, metavar="SITE", help="the site id of this gateway")
    edge.add_argument("--cloud", required=True, metavar="HOST:PORT", help="the cloud broker")
    edge.add_argument(
        "--gateway-user", required=True, metavar="NAME", help="this gateway's cloud user"
    )
    edge.add_argument(
        "--gateway-password-file",
        required=True,
        type=Path,
        metavar="FILE",
        help="file holding that user's password (as printed by provision); - for stdin",
    )
    edge.add_argument(
        "--port", type=int, default=1883, metavar="N", help="local devices (default 1883)"
    )
    for kind, name in ((cloud, "cloud"), (edge, "edge")):
        kind.add_argument(
            "--etc",
            type=Path,
            default=ETC,
            metavar="DIR",
            help=f"folder of certificates, password file and ACL (default {ETC})",
        )
        kind.add_argument(
            "--out",
            type=Path,
            default=Path(f"/etc/mosquitto/conf.d/{name}.conf"),
            metavar="FILE",
            help=f"the config written (default /etc/mosquitto/conf.d/{name}.conf)",
        )
        kind.add_argument(
            "--bind", metavar="ADDRESS", help="listen on this address only (default: all)"
        )
        kind.add_argument(
            "--max-queued-messages",
            type=int,
            default=render.Queues.messages,
            metavar="N",
            help=f"per session (default {render.Queues.messages:,})",
        )
        kind.add_argument(
            "--max-queued-mb",
            type=int,
            default=render.Queues.megabytes,
            metavar="MB",
            help=f"payload per session, MiB (default {render.Queues.megabytes})",
        )
        kind.add_argument(
            "--broker-group",
            default="mosquitto",
            metavar="GROUP",
            help="run as root, give this group read access to the password file and ACL "
            "(default mosquitto, the user Debian's broker runs as)",
        )
        kind.add_argument(
            "--templates",
            type=Path,
            default=render.TEMPLATES,
            metavar="DIR",
            help="folder of the templates (default: mosquitto/ of the source tree)",
        )
