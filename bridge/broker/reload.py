"""Telling a running Mosquitto to reread its password file, ACL and other
reloadable settings: SIGHUP to the process named by its pid file.

Contract: returns the pid signalled, or raises BrokerError saying why not
(no pid file, stale pid, not a Mosquitto, no permission). The reload itself
happens asynchronously in the broker, within milliseconds; clients whose
login is no longer valid are disconnected by it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bridge.broker.errors import BrokerError
from bridge.broker.files import describe


def broker_pid(pid_file: Path) -> int:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        raise BrokerError(
            f"pid file {pid_file} does not exist: is the broker running, and is this its "
            "pid_file? (Debian: /run/mosquitto/mosquitto.pid)"
        ) from None
    except OSError as exc:
        raise BrokerError(f"cannot read pid file {pid_file}: {describe(exc)}") from None
    if not text.isdigit() or int(text) <= 1:
        raise BrokerError(
            f"pid file {pid_file} does not hold a process id (it holds {text[:20]!r})"
        )
    return int(text)


def _command_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def reload_broker(pid_file: Path) -> int:
    """Sends SIGHUP to the broker; returns its pid."""
    pid = broker_pid(pid_file)
    name = _command_name(pid)
    if name is not None and "mosquitto" not in name:
        raise BrokerError(
            f"process {pid} from {pid_file} is {name!r}, not mosquitto: the pid file is stale; "
            "is the broker running?"
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BrokerError(
            f"no process {pid} (from {pid_file}): the broker is not running; the change takes "
            "effect when it starts"
        ) from None
    except PermissionError:
        raise BrokerError(
            f"not allowed to signal the broker (pid {pid}): run as root or as the broker's user"
        ) from None
    return pid
