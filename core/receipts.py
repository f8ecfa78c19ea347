"""Commit receipts: what an edge agent and the bridge say to each other about
a message, on the wire. Both sides use this module; nothing else defines the
format.

    agent --PUBLISH telemetry/<site>/<device>, user property origin="<gateway> <epoch> <seq>"--> broker --> bridge
    bridge --after COMMIT: PUBLISH receipts/<gateway>, {"epoch": E, "seq": [[lo, hi], ...]}--> broker --> agent

Origin: an MQTT v5 user property, so that it travels with any codec (a
seed_json payload is a JSON array, with no room for a field) and a message
without it costs the bridge one test (bridge/source/wire.py).

  * gateway: the agent's site id, which is also the level of its topics
    (telemetry/<site>/+) and of its receipt topic. The bridge receipts a
    message only when its topic's site is that gateway (when the route has
    a site), so a device cannot make the bridge receipt another site.
  * epoch: a random number the agent draws at each start (below 2**53, so
    JSON carries it exactly). Sequences count from 1 in each epoch, so
    receipts of an earlier run are told apart from this run's; and a device
    that cannot read the gateway's receipts cannot guess it.
  * seq: the message's number in this epoch; a message published again
    (a retry, a timeout) keeps its number.

Receipt: QoS 1 on ``receipts/<gateway>``, which the ACL lets only the bridge
write and only that gateway read. ``seq`` is a list of inclusive ranges, in
no particular order; a range may repeat one already sent (a message
committed twice is receipted twice).
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

import orjson

ORIGIN_PROPERTY = "origin"
RECEIPT_TOPIC = "receipts/{gateway}"
MAX_EPOCH = 2**53 - 1


class Origin(NamedTuple):
    gateway: str
    epoch: int
    seq: int


def new_epoch() -> int:
    return 1 + secrets.randbelow(MAX_EPOCH)


def format_origin(gateway: str, epoch: int, seq: int) -> str:
    return f"{gateway} {epoch} {seq}"


def parse_origin(value: str) -> Origin | None:
    """The origin in a user property's value; None if it is not one."""
    parts = value.split(" ")
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        epoch, seq = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 < epoch <= MAX_EPOCH and 0 < seq <= MAX_EPOCH):
        return None
    return Origin(parts[0], epoch, seq)


def receipt_topic(gateway: str) -> str:
    return RECEIPT_TOPIC.format(gateway=gateway)


def ranges(seqs: list[int]) -> list[list[int]]:
    """``seqs`` as sorted inclusive ranges, duplicates merged."""
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and seq <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], seq)
        else:
            out.append([seq, seq])
    return out


def encode_receipt(epoch: int, seq_ranges: list[list[int]]) -> bytes:
    return orjson.dumps({"epoch": epoch, "seq": seq_ranges})


class Receipt(NamedTuple):
    epoch: int
    ranges: list[tuple[int, int]]


def decode_receipt(payload: bytes) -> Receipt | None:
    """The receipt in ``payload``; None if it is not a well-formed one."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), list):
        return None
    epoch = doc.get("epoch")
    if type(epoch) is not int:
        return None
    out: list[tuple[int, int]] = []
    for item in doc["seq"]:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(type(n) is int for n in item)
            or not 0 < item[0] <= item[1]
        ):
            return None
        out.append((item[0], item[1]))
    return Receipt(epoch, out)
