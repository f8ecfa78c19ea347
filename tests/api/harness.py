"""`bridge api` as a subprocess, and an HTTP client for it that keeps headers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import ROOT
from tests.integration.harness import free_port_block, wait_until


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class ApiProcess:
    def __init__(self, config: Path, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port_block(1)
        self.config = config
        self.env = env or {}
        self.log_path = tmp / f"api-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ApiProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env |= {"BRIDGE_API__PORT": str(self.port)} | self.env
        argv = [sys.executable, "-m", "bridge.cli", "--config", str(self.config), "api"]
        with self.log_path.open("ab") as log:
            # A session of its own, so kill() reaches anything it started too.
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, env=env, cwd=ROOT, start_new_session=True
            )
        wait_until(
            lambda: self.request("GET", "/healthz").status == 200 or self.exited(),
            30,
            "the API to answer /healthz",
        )
        assert not self.exited(), f"bridge api exited:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def request(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method
        )
        if key is not None:
            req.add_header("Authorization", f"Bearer {key}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
        except OSError:
            return Reply(0, {}, b"")

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"bridge api did not stop within {timeout}s") from None

    def kill(self) -> None:
        """SIGKILL to the server and whatever it started."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def create_key(config: Path, *scopes: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    argv = [sys.executable, "-m", "bridge.cli", "--config", str(config), "apikey", "create"]
    argv += ["--name", f"test-{'-'.join(scopes)}"]
    for scope in scopes:
        argv += ["--scope", scope]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()
