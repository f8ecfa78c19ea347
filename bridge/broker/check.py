"""`bridge broker check`: the paths of a Mosquitto config, checked before the
broker starts.

Why: Mosquitto 2.0.11 finds some of these mistakes only once it runs, and
some never. A missing password file or ACL stops it at start with a bare
"Unable to open pwfile"; a missing ``persistence_location`` goes unnoticed
until the first save fails, so a restart loses every queued message; an
``include_dir`` in an included file is silently ignored, and with it the
listeners it would have added.

What is checked, in the main config and every ``*.conf`` of its
``include_dir`` (the order and rules Mosquitto uses):

    files read        password_file, acl_file, psk_file, cafile, certfile,
                      keyfile, crlfile, dhparamfile, bridge_cafile,
                      bridge_certfile, bridge_keyfile, plugin, auth_plugin
    folders read      capath, bridge_capath, include_dir
    folder written    persistence_location
    folder exists     the folder of ``log_dest file PATH``

Each must be an absolute path (the broker resolves a relative one from its
working directory: / under systemd), exist, be of the right kind, and be
reachable by the broker's user: run as root, Mosquitto drops to ``user``
(default mosquitto) right after reading its config and before it reads any
of these. Run as another user, the broker stays that user.

Contract: ``check`` never changes anything; it returns every problem found,
one line each, naming the file, line, option and what to do about it.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from bridge.broker.errors import BrokerError

_DEV_CA = "`bridge broker ca --out DIR` makes development ones"
READ_FILES = {
    "password_file": "`bridge broker render` writes an empty one; add users with "
    "`bridge broker provision`",
    "acl_file": "`bridge broker render` writes it",
    "psk_file": "",
    "cafile": _DEV_CA,
    "certfile": _DEV_CA,
    "keyfile": _DEV_CA,
    "crlfile": "",
    "dhparamfile": "",
    "bridge_cafile": "copy the cloud broker's CA certificate (its ca.crt) there",
    "bridge_certfile": "",
    "bridge_keyfile": "",
    "plugin": "",
    "auth_plugin": "",
}
READ_DIRS = ("capath", "bridge_capath")
READ, WRITE, SEARCH = os.R_OK, os.W_OK, os.X_OK


@dataclass(frozen=True)
class Setting:
    option: str
    value: str
    file: Path
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.option} {self.value}"


@dataclass(frozen=True)
class Account:
    """Who the broker runs as once it has read its config."""

    name: str
    uid: int
    gids: frozenset[int]


def read_config(main: Path) -> list[Setting]:
    """The settings of ``main`` and its include_dir files, in the order
    Mosquitto reads them (as root, before it drops privileges)."""
    out: list[Setting] = []
    for s in _read_file(main):
        out.append(s)
        folder = Path(s.value)
        if s.option != "include_dir" or not folder.is_absolute() or not folder.is_dir():
            continue  # check() names what is wrong with it
        try:
            # Mosquitto reads *.conf only, sorted by name, ignoring case.
            files = sorted((p for p in folder.iterdir() if p.name.endswith(".conf")), key=_fold)
        except OSError as exc:
            raise BrokerError(f"{s.where()}: cannot list it: {exc.strerror or exc}") from None
        for file in files:
            out.extend(_read_file(file))
    return out


def check(main: Path) -> tuple[list[str], int]:
    """Every problem of the config ``main`` (empty if none) and how many
    paths were checked."""
    settings = read_config(main)
    problems: list[str] = []
    account = _broker_account(settings, problems)
    checked = 0
    for s in settings:
        path = Path(s.value)
        if s.option in READ_FILES:
            checked += 1
            if _path_ok(s, problems) and _exists(s, path, "file", problems, READ_FILES[s.option]):
                _reachable(s, path, READ, account, problems)
        elif s.option in READ_DIRS:
            checked += 1
            if _path_ok(s, problems) and _exists(s, path, "folder", problems):
                _reachable(s, path, READ | SEARCH, account, problems)
        elif s.option == "include_dir" and s.file != main:
            problems.append(
                f"{s.where()}: Mosquitto ignores include_dir outside the main config "
                f"({main}), and every file of that folder with it; move it there"
            )
        elif s.option == "include_dir":
            checked += 1
            if _path_ok(s, problems):
                _exists(s, path, "folder", problems)
        elif s.option == "persistence_location":
            checked += 1
            if _path_ok(s, problems) and _exists(s, path, "folder", problems):
                _reachable(s, path, WRITE | SEARCH, account, problems)
        elif s.option == "log_dest" and s.value.split(maxsplit=1)[:1] == ["file"]:
            checked += 1
            log = Path(s.value.removeprefix("file").strip())
            if _path_ok(s, problems, log) and not log.parent.is_dir():
                problems.append(f"{s.where()}: folder {log.parent} does not exist; create it")
    return problems, checked


def _fold(path: Path) -> str:
    return path.name.casefold()


def _read_file(file: Path) -> list[Setting]:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise BrokerError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise BrokerError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    out: list[Setting] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            option, _, value = line.partition(" ")
            out.append(Setting(option, value.strip(), file, number))
    return out


def _path_ok(s: Setting, problems: list[str], path: Path | None = None) -> bool:
    path = Path(s.value) if path is None else path
    if not str(path):
        problems.append(f"{s.file}:{s.line}: {s.option} has no value")
        return False
    if not path.is_absolute():
        problems.append(
            f"{s.where()}: not an absolute path; the broker would look for it from its "
            "working directory (/ under systemd)"
        )
        return False
    return True


def _exists(s: Setting, path: Path, kind: str, problems: list[str], hint: str = "") -> bool:
    """True if ``path`` is a ``kind`` ("file" or "folder"); else a problem."""
    tail = f"; {hint}" if hint else ""
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        problems.append(f"{s.where()}: a link to {target}, which does not exist{tail}")
        return False
    if not path.exists():
        problems.append(f"{s.where()}: no such {kind}{tail}")
        return False
    if kind == "file" and not path.is_file():
        problems.append(f"{s.where()}: not a file")
        return False
    if kind == "folder" and not path.is_dir():
        problems.append(f"{s.where()}: not a folder")
        return False
    return True


def _broker_account(settings: list[Setting], problems: list[str]) -> Account | None:
    """The account the broker reads its files as; None: the current user."""
    if os.geteuid() != 0:
        return None
    users = [s for s in settings if s.option == "user"]
    name = users[-1].value if users else "mosquitto"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if users:
            problems.append(
                f"{users[-1].where()}: no such user on this host; the broker would refuse to start"
            )
            return None
        # Without a `user` line Mosquitto falls back to nobody.
        name = "nobody"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
    return Account(name, entry.pw_uid, frozenset(os.getgrouplist(name, entry.pw_gid)))


def _reachable(
    s: Setting, path: Path, want: int, account: Account | None, problems: list[str]
) -> None:
    """A problem unless ``account`` may ``want`` (READ/WRITE/SEARCH bits) ``path``
    and search every folder above it."""
    target = path.resolve()
    who = account.name if account else "this user"
    if account is None:
        if not os.access(target, want):
            problems.append(f"{s.where()}: not {_verb(want)} by {who}")
        return
    if account.uid == 0:
        return
    for folder in reversed(target.parents):
        if not _allows(folder, SEARCH, account):
            problems.append(
                f"{s.where()}: {account.name}, the user the broker runs as, cannot enter {folder}"
            )
            return
    if not _allows(target, want, account):
        problems.append(
            f"{s.where()}: not {_verb(want)} by {account.name}, the user the broker runs as "
            f"(e.g. chgrp {account.name} {target}; chmod g+{_letters(want)} {target})"
        )


def _allows(path: Path, want: int, account: Account) -> bool:
    st = path.stat()
    if st.st_uid == account.uid:
        bits = st.st_mode >> 6
    elif st.st_gid in account.gids:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def _verb(want: int) -> str:
    return "writable" if want & WRITE else "readable"


def _letters(want: int) -> str:
    return "".join(c for bit, c in ((READ, "r"), (WRITE, "w"), (SEARCH, "x")) if want & bit)
