"""The broker's password file, changed only through mosquitto_passwd.

Contract: ``set_password`` creates or replaces one user and ``remove_user``
deletes one; neither touches another line. The password goes to
mosquitto_passwd on its standard input, never on a command line that other
users of the machine could read in the process list. Mosquitto rereads the
file on SIGHUP (``bridge.broker.reload``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.broker import tools
from bridge.broker.errors import BrokerError
from bridge.broker.files import check_writable, describe, share_with_group


def users(passwd_file: Path) -> list[str]:
    """The usernames in the file (empty when it does not exist)."""
    try:
        text = passwd_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BrokerError(f"cannot read password file {passwd_file}: {describe(exc)}") from None
    return [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]


def create_empty(passwd_file: Path, mode: int = 0o640) -> bool:
    """Creates an empty password file unless one exists; True if it did."""
    check_writable(passwd_file)
    try:
        fd = os.open(passwd_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise BrokerError(f"cannot create password file {passwd_file}: {describe(exc)}") from None
    os.close(fd)
    return True


def set_password(
    passwd_file: Path, user: str, password: str, group: str | None = "mosquitto"
) -> bool:
    """Creates ``user`` or replaces its password; True if it existed before.
    A new file is made readable by ``group``, the broker's (when run as root)."""
    tools.find("mosquitto_passwd")
    if create_empty(passwd_file):
        share_with_group(passwd_file, group)
    check_writable(passwd_file)
    existed = user in users(passwd_file)
    tools.run(
        ["mosquitto_passwd", str(passwd_file), user],
        what=f"setting the password of {user} in {passwd_file}",
        stdin=f"{password}\n{password}\n",
    )
    if user not in users(passwd_file):
        raise BrokerError(f"mosquitto_passwd did not add {user} to {passwd_file}")
    return existed


def remove_user(passwd_file: Path, user: str) -> None:
    """Deletes ``user``; BrokerError if the file or the user does not exist."""
    tools.find("mosquitto_passwd")
    if not passwd_file.exists():
        raise BrokerError(f"password file {passwd_file} does not exist")
    if user not in users(passwd_file):
        raise BrokerError(f"{user} is not in {passwd_file}; nothing to revoke")
    check_writable(passwd_file)
    tools.run(
        ["mosquitto_passwd", "-D", str(passwd_file), user],
        what=f"removing {user} from {passwd_file}",
    )
