"""Headless Chromium (Debian's chromium) driven over the DevTools protocol on
a pipe (--remote-debugging-pipe): commands go in on the browser's fd 3,
answers and events come out on its fd 4, each a JSON message ended by NUL.
No driver, no websocket, no extra package."""

from __future__ import annotations

import base64
import contextlib
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe", "--window-size=1100,900",
]  # fmt: skip


class Chromium:
    def __init__(self, profile: Path, log: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            pytest.skip(
                "chromium is not installed (Debian package chromium; scripts/stack.sh installs it)"
            )
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash puts the pipe ends where Chromium looks for them: fd 3 and fd 4.
        argv = ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "chromium",
                binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=out, pass_fds=(to_browser_r, from_browser_w)
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.errors: list[str] = []  # uncaught exceptions in the page
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Runtime.enable", session=True)
        self.call("Page.enable", session=True)

    def call(self, method: str, session: bool = False, timeout: float = 30, **params: Any) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, orjson.dumps(message) + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline - time.monotonic(), method)
            if reply.get("method") == "Runtime.exceptionThrown":
                details = reply["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description", str(details)))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, timeout))
            if not ready:
                raise TimeoutError(f"Chromium did not answer {what}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (it exited?)")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        result: dict[str, Any] = orjson.loads(message)
        return result

    def navigate(self, url: str, timeout: float = 30) -> None:
        """Opens ``url`` and returns once its document has loaded."""
        self.call("Page.navigate", session=True, url=url)
        page = url.partition("#")[0]
        deadline = time.monotonic() + timeout
        while self.evaluate("location.href.split('#')[0] + ' ' + document.readyState") != (
            f"{page} complete"
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        """The expression's value in the page (JSON-able values only)."""
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
