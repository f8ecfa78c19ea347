"""The managed gateway entries of the cloud broker's ACL file.

The file is the rendered template (mosquitto/cloud.acl) followed by one block
per gateway, each written by `bridge broker provision NAME --gateway SITE`:

    # gateway gw-site-1 for site site-1 (managed by bridge broker provision)
    user gw-site-1
    topic write spBv1.0/site-1/#
    topic read spBv1.0/site-1/NCMD/#
    topic read spBv1.0/site-1/DCMD/#
    topic write telemetry/site-1/+
    topic read receipts/site-1

The second grant lets the gateway's edge agent read its commit receipts
(core/receipts.py), which only the bridge may write: nobody else reads or
forges them. A block written before receipts existed lacks it: provision
the gateway again to add it (its agent meanwhile gets no receipts and
deletes readings on the broker's PUBACK, as before).

A block is its marker line plus the ``user``/``topic`` lines right after it.
Invariants: at most one block per gateway; lines outside blocks are never
changed; blocks sit at the end, after every ``pattern`` and the bridge's
``user`` block, so no ``topic`` line of a gateway can fall under another user.
Writes are atomic and keep the file's mode.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from bridge.broker.errors import BrokerError
from bridge.broker.files import describe, read_text, write_atomic

_MARKER = re.compile(r"^# gateway (\S+) for site (\S+) \(managed by bridge broker provision\)$")


def gateway_block(user: str, site: str) -> str:
    return (
        f"# gateway {user} for site {site} (managed by bridge broker provision)\n"
        f"user {user}\n"
        f"topic write spBv1.0/{site}/#\n"
        f"topic read spBv1.0/{site}/NCMD/#\n"
        f"topic read spBv1.0/{site}/DCMD/#\n"
        f"topic write telemetry/{site}/+\n"
        f"topic read receipts/{site}\n"
    )


def split(text: str) -> tuple[str, dict[str, str]]:
    """The text outside gateway blocks, and the blocks by gateway user."""
    outside: list[str] = []
    blocks: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        marker = _MARKER.match(lines[i].rstrip("\n"))
        if marker is None:
            outside.append(lines[i])
            i += 1
            continue
        block = [lines[i]]
        i += 1
        while i < len(lines) and lines[i].startswith(("user ", "topic ")):
            block.append(lines[i])
            i += 1
        blocks[marker.group(1)] = "".join(block)
    return "".join(outside), blocks


def join(outside: str, blocks: dict[str, str]) -> str:
    text = outside.rstrip("\n") + "\n"
    for block in blocks.values():
        text += "\n" + block
    return text


def _mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise BrokerError(f"cannot read ACL file {path}: {describe(exc)}") from None


def set_gateway(acl_file: Path, user: str, site: str) -> None:
    """Lets ``user`` publish telemetry/<site>/+ and read receipts/<site>
    (replacing its previous entry)."""
    if not acl_file.exists():
        raise BrokerError(
            f"ACL file {acl_file} does not exist; write it first: bridge broker render cloud"
        )
    outside, blocks = split(read_text(acl_file, "ACL file"))
    blocks.pop(user, None)
    blocks[user] = gateway_block(user, site)
    write_atomic(acl_file, join(outside, blocks), _mode(acl_file))


def remove_gateway(acl_file: Path, user: str) -> bool:
    """Removes ``user``'s entry; False if it had none."""
    outside, blocks = split(read_text(acl_file, "ACL file"))
    if blocks.pop(user, None) is None:
        return False
    write_atomic(acl_file, join(outside, blocks), _mode(acl_file))
    return True


def gateways(acl_file: Path) -> dict[str, str]:
    """Gateway user -> site, from the managed entries."""
    _, blocks = split(read_text(acl_file, "ACL file"))
    out = {}
    for user, block in blocks.items():
        marker = _MARKER.match(block.splitlines()[0])
        if marker:
            out[user] = marker.group(2)
    return out
