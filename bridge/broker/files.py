"""Writing files so that a broker reading them never sees half of one.

Contract: every write goes to a temporary file in the same folder, then
``os.replace`` puts it in place, so a reader (Mosquitto on SIGHUP) sees the
old file or the new one. OS errors become BrokerError naming the path.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bridge.broker.errors import BrokerError


def describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable(path: Path) -> None:
    """Raises BrokerError unless ``path`` can be created or replaced."""
    folder = path.parent
    if not folder.is_dir():
        raise BrokerError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BrokerError(
            f"cannot write {path}: folder {folder} is not writable by this user "
            "(run as root or as the owner of that folder)"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise BrokerError(f"cannot write {path}: the file is not writable by this user")


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Writes ``text`` to ``path`` atomically, with ``mode``."""
    check_writable(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BrokerError(f"cannot write {path}: {describe(exc)}") from None


def point_link(link: Path, target: Path) -> None:
    """Makes ``link`` a symbolic link to ``target``, atomically (relative when
    both sit in one folder, so the pair can be moved together)."""
    check_writable(link)
    value = target.name if target.parent.resolve() == link.parent.resolve() else str(target)
    tmp = link.with_name(f".{link.name}.link{os.getpid()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(value, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BrokerError(f"cannot point {link} at {target}: {describe(exc)}") from None


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BrokerError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise BrokerError(f"cannot read {what} {path}: {describe(exc)}") from None


def share_with_group(path: Path, group: str | None) -> bool:
    """Run as root, makes ``group`` (the broker's) the group of ``path``; True
    if it did. Mosquitto 2.0 drops privileges right after reading its config,
    before it reads keys, password files and ACLs."""
    if group is None or os.geteuid() != 0:
        return False
    import grp  # noqa: PLC0415 - POSIX only, and only needed here

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False  # no such group here (e.g. the broker runs as root): nothing to share
    try:
        os.chown(path, 0, gid, follow_symlinks=False)
    except OSError as exc:
        raise BrokerError(f"cannot give group {group} access to {path}: {describe(exc)}") from None
    return True
