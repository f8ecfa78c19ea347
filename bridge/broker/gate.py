"""The login gate of the cloud broker's device listener.

Why: Mosquitto 2.0.11 does not restore shared subscriptions from its
persistence file. After a restart, until the bridge has subscribed again, a
message for the bridge matches no subscriber and is dropped; a Mosquitto
edge bridge (and most device firmware) treats the PUBACK that says so (0x10,
no matching subscribers) as delivered. So devices and gateways must not get
in before the bridge has subscribed.

How: the device listener's ``password_file`` is the gate, a symbolic link.
Open, it points at the real password file; closed, at an empty file, and
every login on that listener is refused (CONNACK 0x87): gateways keep their
queues and retry. The loopback and services listeners, which the bridge uses,
read the real file and are never gated.

    close   before the broker starts (systemd ExecStartPre)
    open    once every bridge worker answers /readyz with 200, which it does
            only after it has subscribed again; then SIGHUP

Contract: ``close`` and ``open`` replace the link atomically; the broker
reads it at start and on SIGHUP only.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bridge.broker.errors import BrokerError
from bridge.broker.files import point_link, write_atomic


def closed_file(gate: Path) -> Path:
    return gate.with_name(gate.name + ".closed")


def close(gate: Path) -> None:
    """Points the gate at an empty password file: every login is refused."""
    empty = closed_file(gate)
    write_atomic(empty, "", 0o644)
    point_link(gate, empty)


def open_(gate: Path, passwd_file: Path) -> None:
    """Points the gate at the real password file."""
    if not passwd_file.is_file():
        raise BrokerError(f"password file {passwd_file} does not exist")
    point_link(gate, passwd_file)


def state(gate: Path, passwd_file: Path) -> str:
    """'open', 'closed', 'missing', or 'not a gate' (a regular file or an unknown link)."""
    if not gate.is_symlink():
        return "not a gate" if gate.exists() else "missing"
    target = gate.resolve()
    if target == passwd_file.resolve():
        return "open"
    if target == closed_file(gate).resolve():
        return "closed"
    return "not a gate"


def _status(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - the operator's URL
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"


def wait_ready(urls: Sequence[str], timeout: float, every: float = 0.2) -> None:
    """Returns when every URL answers 200; BrokerError after ``timeout`` seconds."""
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise BrokerError(f"{url!r} is not an http:// URL (e.g. http://127.0.0.1:9108/readyz)")
    deadline = time.monotonic() + timeout
    waiting = list(urls)
    last: dict[str, str] = {}
    while waiting:
        for url in list(waiting):
            last[url] = _status(url)
            if last[url] == "200":
                waiting.remove(url)
        if not waiting:
            return
        if time.monotonic() > deadline:
            report = "; ".join(f"{u}: {last[u]}" for u in waiting)
            raise BrokerError(
                f"the bridge was not ready within {timeout:.0f} s ({report}); the gate stays "
                "closed, so devices and gateways keep what they have until it opens"
            )
        time.sleep(every)
