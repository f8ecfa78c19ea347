"""Real Mosquitto processes started from the shipped templates, on test ports.

Each broker gets its own folder laid out like Debian's /etc/mosquitto: a main
config (user, pid_file, persistence_location, log_dest, include_dir, as
Debian's mosquitto.conf sets them) and the drop-in rendered by
`bridge broker render` in conf.d/. Every start runs `bridge broker check` on
that config first, as the deployment does, so every broker the tests start
shows the check passes on the shipped configs. Ports come from 41883-41999,
never the shared stack's; every process is stopped by the fixture that
started it.
"""

from __future__ import annotations

import getpass
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge.broker import acl, check, gate, passwd, render
from bridge.broker.accounts import new_password
from bridge.broker.route_acl import RouteSpec
from tests.integration.harness import wait_until

PORTS = range(41883, 42000)
_taken: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports in 41883-41999."""
    out: list[int] = []
    candidates = [p for p in PORTS if p not in _taken]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
        if len(out) == count:
            _taken.update(out)  # not handed out twice in this session
            return out
    raise RuntimeError("no free ports left in 41883-41999")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """One broker process; ``start`` returns when every port accepts connections."""

    def __init__(self, root: Path, ports: list[int], debug: bool = False) -> None:
        self.root = root
        self.ports = ports
        self.conf_d = root / "conf.d"
        self.pid_file = root / "mosquitto.pid"
        self.log_file = root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.conf_d.mkdir(exist_ok=True)
        self.main_conf = root / "mosquitto.conf"
        self.main_conf.write_text(
            f"user {getpass.getuser()}\n"
            f"pid_file {self.pid_file}\n"
            f"persistence_location {root / 'data'}/\n"
            f"log_dest file {self.log_file}\n"
            + ("log_type debug\n" if debug else "")
            + f"include_dir {self.conf_d}\n"
        )

    def start(self, timeout: float = 15, checked: bool = True) -> Mosquitto:
        """``checked``: first assert that `bridge broker check` finds no problem."""
        assert not self.running(), "already running"
        if checked:
            problems, _ = check.check(self.main_conf)
            assert problems == [], problems
        with (self.root / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.main_conf)], stdout=err, stderr=err
            )
        wait_until(
            lambda: (
                self.proc is not None
                and (self.proc.poll() is not None or all(port_open(p) for p in self.ports))
            ),
            timeout,
            f"mosquitto on ports {self.ports}",
        )
        assert self.proc.poll() is None, f"mosquitto exited:\n{self.log()[-3000:]}"
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (Mosquitto saves its persistence file), then waits."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        text = ""
        for path in (self.root / "stderr.log", self.log_file):
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def lines(self, needle: str) -> int:
        """How many log lines hold ``needle``."""
        return sum(needle in line for line in self.log().splitlines())


@dataclass
class Cloud:
    """A cloud broker rendered from mosquitto/cloud.conf, with its users."""

    root: Path
    pki: Path
    port: int  # devices and gateways, TLS, behind the gate
    services_port: int  # mutual TLS
    local_port: int  # loopback, plain
    broker: Mosquitto
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def passwd(self) -> Path:
        return self.etc / "passwd"

    @property
    def acl(self) -> Path:
        return self.etc / "acl"

    @property
    def gate(self) -> Path:
        return self.etc / "passwd.gate"

    @property
    def ca(self) -> Path:
        return self.etc / "ca.crt"

    def provision(self, name: str, site: str | None = None) -> str:
        password = new_password()
        passwd.set_password(self.passwd, name, password)
        if site is not None:
            acl.set_gateway(self.acl, name, site)
        self.passwords[name] = password
        return password

    def reload(self) -> None:
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)

    def close_gate(self) -> None:
        gate.close(self.gate)

    def open_gate(self) -> None:
        gate.open_(self.gate, self.passwd)


def make_cloud(
    root: Path, pki: Path, debug: bool = False, routes: tuple[RouteSpec, ...] = ()
) -> Cloud:
    """Renders (with the ACL grants of ``routes``, the bridge's mqtt.routes
    beyond telemetry/), provisions the bridge user and starts nothing yet."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    for name in ("ca.crt", "server.crt", "server.key"):
        (etc / name).write_bytes((pki / name).read_bytes())
    (etc / "server.key").chmod(0o600)
    port, services_port, local_port = free_ports(3)
    broker = Mosquitto(root, [port, services_port, local_port], debug=debug)
    render.render_cloud(
        render.CloudOptions(
            etc=etc,
            out=broker.conf_d / "cloud.conf",
            port=port,
            services_port=services_port,
            local_port=local_port,
            bind="127.0.0.1",
            broker_group=None,
            routes=routes,
        )
    )
    cloud = Cloud(root, pki, port, services_port, local_port, broker)
    cloud.provision("bridge")
    return cloud


@dataclass
class Edge:
    """A gateway's broker rendered from mosquitto/edge.conf."""

    root: Path
    site: str
    port: int
    broker: Mosquitto
    passwords: dict[str, str] = field(default_factory=dict)

    def provision(self, name: str) -> str:
        password = new_password()
        passwd.set_password(self.root / "etc" / "passwd", name, password)
        self.passwords[name] = password
        return password

    def reload(self) -> None:
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)


def make_edge(root: Path, cloud: Cloud, site: str, gateway: str, debug: bool = False) -> Edge:
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "cloud-ca.crt").write_bytes(cloud.ca.read_bytes())
    (port,) = free_ports(1)
    broker = Mosquitto(root, [port], debug=debug)
    render.render_edge(
        render.EdgeOptions(
            etc=etc,
            out=broker.conf_d / "edge.conf",
            site=site,
            cloud=f"127.0.0.1:{cloud.port}",
            gateway_user=gateway,
            gateway_password=cloud.provision(gateway, site=site),
            port=port,
            bind="127.0.0.1",
            broker_group=None,
        )
    )
    return Edge(root, site, port, broker)


def wait_for_log(broker: Mosquitto, needle: str, count: int = 1, timeout: float = 30) -> None:
    wait_until(lambda: broker.lines(needle) >= count, timeout, f"{needle!r} in the broker log")


def elapsed(since: float) -> float:
    return time.monotonic() - since
