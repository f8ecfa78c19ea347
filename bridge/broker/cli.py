"""`bridge broker ...`: certificates, users, the login gate and configs for the
production Mosquitto brokers (mosquitto/README.md tells the whole story).

Registered by bridge.cli: ``add_broker_commands`` adds the parser,
``run_broker_command`` runs what was parsed. Errors are BrokerError (printed
by bridge.cli as one line, exit 1). Secrets go to stdout alone, everything
else to stderr, so ``PASSWORD=$(bridge broker provision pump-1 ...)`` works.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.broker import acl, ca, check, gate, passwd, render, route_acl
from bridge.broker.accounts import check_id, check_username, new_password
from bridge.broker.errors import BrokerError
from bridge.broker.parser import add_actions
from bridge.broker.reload import reload_broker

DESCRIPTION = """\
Tooling for the production brokers: a development CA (ca), users for devices,
gateways and the bridge (provision, revoke), the login gate that keeps devices
out until the bridge has subscribed after a broker restart (gate), the cloud
and edge configs rendered from mosquitto/*.conf (render), and a check of a
config's files and folders before the broker starts (check).

A device's MQTT username is its device id, the last level of its topic
telemetry/<site>/<device>; the ACL lets it publish there and nowhere else.
"""

EPILOG = """\
examples:
  bridge broker ca --out /etc/mosquitto/bridge --host broker.example --client bridge
  bridge broker render cloud --etc /etc/mosquitto/bridge --out /etc/mosquitto/conf.d/cloud.conf
  bridge broker provision bridge --passwd /etc/mosquitto/bridge/passwd
  bridge broker provision pump-1 --passwd /etc/mosquitto/bridge/passwd --reload /run/mosquitto/mosquitto.pid
  bridge broker provision gw-site-1 --gateway site-1 --acl /etc/mosquitto/bridge/acl \\
      --passwd /etc/mosquitto/bridge/passwd --reload /run/mosquitto/mosquitto.pid
  bridge broker check /etc/mosquitto/mosquitto.conf
  bridge broker revoke pump-1 --passwd /etc/mosquitto/bridge/passwd --reload /run/mosquitto/mosquitto.pid
  bridge broker gate open --gate /etc/mosquitto/bridge/passwd.gate --passwd /etc/mosquitto/bridge/passwd \\
      --when-ready http://127.0.0.1:9108/readyz --reload /run/mosquitto/mosquitto.pid
"""


def say(message: str) -> None:
    print(message, file=sys.stderr)


def add_broker_commands(commands: Any) -> None:
    """Adds `broker` and its actions to the `bridge` subparsers ``commands``."""
    broker = commands.add_parser(
        "broker",
        help="production Mosquitto: certificates, users, login gate, configs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_actions(broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True))


def run_broker_command(args: argparse.Namespace, settings: object) -> int:
    """Runs the parsed `bridge broker` action; of ``settings``, render uses the
    routes (mqtt.routes: their ACL grants, bridge.broker.route_acl)."""
    args.routes = _routes(settings)
    handler = _HANDLERS[args.broker_command]
    return handler(args)


def _routes(settings: object) -> tuple[route_acl.RouteSpec, ...]:
    routes = getattr(getattr(settings, "mqtt", None), "routes", ())
    return tuple((r.topic, r.codec, dict(r.options)) for r in routes)


def _reload(pid_file: Path | None) -> None:
    if pid_file is not None:
        pid = reload_broker(pid_file)
        say(f"broker reloaded (SIGHUP to pid {pid})")


def _ca(args: argparse.Namespace) -> int:
    hosts = args.host or ["localhost", "127.0.0.1"]
    issued = ca.make(args.out, hosts, args.client, args.days, args.broker_group or None)
    say(("made a new CA" if issued.ca_created else "reused the CA") + f" in {issued.folder}")
    for path in issued.files:
        say(f"  {path}")
    say(f"server certificate for: {', '.join(hosts)}")
    return 0


def _provision(args: argparse.Namespace) -> int:
    name = check_username(args.name, "user name")
    if args.gateway is not None:
        check_id(args.gateway, "site id")
        if args.acl is None:
            raise BrokerError("--gateway needs --acl, the cloud broker's ACL file")
    password = new_password()
    existed = passwd.set_password(args.passwd, name, password)
    say(f"{'new password for' if existed else 'created'} {name} in {args.passwd}")
    if args.gateway is not None:
        acl.set_gateway(args.acl, name, args.gateway)
        say(f"{name} may publish telemetry/{args.gateway}/+ ({args.acl})")
    elif args.acl is not None and acl.remove_gateway(args.acl, name):
        say(f"{name} is no longer a gateway ({args.acl})")
    _reload(args.reload)
    if args.reload is None:
        say("the broker uses it after a reload (SIGHUP, or --reload PIDFILE)")
    say("the password, shown this once:")
    print(password, flush=True)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    name = check_username(args.name, "user name")
    passwd.remove_user(args.passwd, name)
    say(f"removed {name} from {args.passwd}")
    if args.acl is not None and acl.remove_gateway(args.acl, name):
        say(f"removed the gateway entry of {name} from {args.acl}")
    _reload(args.reload)
    return 0


def _gate(args: argparse.Namespace) -> int:
    if args.action == "status":
        print(gate.state(args.gate, args.passwd))
        return 0
    if args.action == "close":
        gate.close(args.gate)
        say(f"gate {args.gate} closed: the device listener refuses every login")
    else:
        if args.when_ready:
            say(f"waiting for {len(args.when_ready)} bridge worker(s) to be ready...")
            gate.wait_ready(args.when_ready, args.timeout)
        gate.open_(args.gate, args.passwd)
        say(f"gate {args.gate} open: logins checked against {args.passwd}")
    _reload(args.reload)
    return 0


def _render(args: argparse.Namespace) -> int:
    queues = render.Queues(args.max_queued_messages, args.max_queued_mb)
    group = args.broker_group or None
    if args.kind == "cloud":
        done = render.render_cloud(
            render.CloudOptions(
                etc=args.etc,
                out=args.out,
                port=args.port,
                services_port=args.services_port,
                local_port=args.local_port,
                bind=args.bind,
                bridge_user=args.bridge_user,
                api_user=args.api_user,
                alerts_user=args.alerts_user,
                require_client_cert=args.require_client_cert,
                queues=queues,
                broker_group=group,
                templates=args.templates,
                routes=getattr(args, "routes", ()),
            )
        )
    else:
        done = render.render_edge(
            render.EdgeOptions(
                etc=args.etc,
                out=args.out,
                site=args.site,
                cloud=args.cloud,
                gateway_user=args.gateway_user,
                gateway_password=_read_secret(args.gateway_password_file),
                port=args.port,
                bind=args.bind,
                queues=queues,
                broker_group=group,
                templates=args.templates,
            )
        )
    for path, what in done.files:
        say(f"{path}: {what}")
    for note in done.notes:
        say(f"note: {note}")
    return 0


def _check(args: argparse.Namespace) -> int:
    problems, checked = check.check(args.conf)
    for problem in problems:
        say(problem)
    if problems:
        raise BrokerError(
            f"{len(problems)} problem(s) in {args.conf}; the broker would not start, or would "
            "lose what it should keep"
        )
    say(f"{args.conf}: {checked} paths checked, no problems")
    return 0


def _read_secret(path: Path) -> str:
    try:
        text = sys.stdin.readline() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BrokerError(f"password file {path} does not exist") from None
    except OSError as exc:
        raise BrokerError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ca": _ca,
    "provision": _provision,
    "revoke": _revoke,
    "gate": _gate,
    "render": _render,
    "check": _check,
}
