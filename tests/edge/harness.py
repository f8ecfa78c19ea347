"""Driving a real `edge-agent` process, and a broker of the test's own.

The agent runs as a subprocess (python -m edge_agent.cli) with its spool and
log in the test's tmp folder and its status on a free port, so a test can
kill -9 it, restart it on the same spool, and read /healthz and /metrics as an
operator would. Brokers a test stops and starts are its own Mosquitto
processes (tests/broker/brokers.py), never the shared stack's.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tests.broker.brokers import Mosquitto, free_ports
from tests.conftest import ROOT
from tests.integration.harness import Key, free_port_block, wait_until


def local_broker(root: Path) -> Mosquitto:
    """A Mosquitto like the test stack's (mosquitto/local.conf: anonymous, on
    loopback, persistent), on a port of its own; not started."""
    (port,) = free_ports(1)
    broker = Mosquitto(root, [port])
    settings = (ROOT / "mosquitto" / "local.conf").read_text()
    (broker.conf_d / "local.conf").write_text(f"listener {port} 127.0.0.1\n{settings}")
    return broker


class Agent:
    """`edge-agent` as a subprocess."""

    def __init__(
        self,
        tmp: Path,
        config: str,
        name: str = "agent",
        max_readings: int = 1_000_000,
        program: Sequence[str] = (sys.executable, "-m", "edge_agent.cli"),
    ) -> None:
        self.program = list(program)  # e.g. another virtualenv's edge-agent
        self.status_port = free_port_block(1)
        self.spool = tmp / f"{name}-spool.db"
        self.config = tmp / f"{name}.toml"
        self.config.write_text(
            f'[spool]\npath = "{self.spool}"\nmax_readings = {max_readings}\n\n'
            f"[status]\nport = {self.status_port}\n\n{config}"
        )
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *command: str) -> Agent:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("EDGE_") and k != "PYTHONPATH"
        }
        argv = [*self.program, "--config", str(self.config), *command]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=ROOT)
        wait_until(lambda: self.health() is not None or self.exited(), 30, "the agent's /healthz")
        assert not self.exited(), f"the agent exited:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.status_port}{path}", timeout=5
            ) as r:
                return bytes(r.read())
        except (urllib.error.URLError, OSError):
            return None

    def health(self) -> dict[str, Any] | None:
        body = self._get("/healthz")
        return None if body is None else orjson.loads(body)

    def status(self) -> dict[str, Any]:
        """/healthz, waiting for an answer (a loaded machine may be slow to give one)."""
        got: list[dict[str, Any]] = []

        def answered() -> bool:
            h = self.health()
            if h is not None:
                got.append(h)
            return bool(got)

        wait_until(answered, 30, "an answer from /healthz")
        return got[0]

    def metrics(self) -> dict[str, float]:
        body = self._get("/metrics")
        assert body is not None, "no /metrics"
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, and its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the agent did not stop:\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def spooled(self) -> int:
        """Readings in the spool file, read directly (the agent may be stopped)."""
        db = sqlite3.connect(self.spool)
        try:
            return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
        finally:
            db.close()


def uplink_toml(port: int, topic: str, **extra: Any) -> str:
    """An [uplink] section for a test broker: fast retries, a unique client id."""
    values = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": f"edge-{uuid.uuid4().hex[:8]}",
        "topic": topic,
        "reconnect_min_s": 1,
        "reconnect_max_s": 2,
        "retry_max_s": 1.0,
    } | extra
    return "[uplink]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def keys(readings: list[Any]) -> set[Key]:
    return {(r.device_id, r.metric, r.time_us) for r in readings}
