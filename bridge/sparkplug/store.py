"""Births and device lifecycle in PostgreSQL (migration 0007), written and
read by the worker that holds the Sparkplug role (bridge.sparkplug.role).

A birth is kept as its metrics' (name, alias, datatype): enough to decode
later DATA. An NBIRTH replaces its node's row and deletes its devices' rows,
in one transaction, as the host forgets them. A lifecycle change sets
``devices.lifecycle`` (online, offline), which the API reports as the
device's status.
"""

from __future__ import annotations

import asyncpg
import orjson

from bridge.sparkplug import sql
from bridge.sparkplug.state import Birth, BirthMetric, Status


async def load_births(conn: asyncpg.Connection) -> list[Birth]:
    births = []
    for row in await conn.fetch(sql.LOAD):
        metrics = [BirthMetric(str(n), a, int(t)) for n, a, t in orjson.loads(row[4])]
        births.append(Birth(row[0], row[1], row[2], row[3], metrics))
    return births


async def save(conn: asyncpg.Connection, item: Birth | Status) -> None:
    if isinstance(item, Status):
        await conn.execute(
            sql.SAVE_STATUS, item.device_id, item.site_id, "online" if item.online else "offline"
        )
        return
    metrics = orjson.dumps([[m.name, m.alias, m.datatype] for m in item.metrics]).decode()
    async with conn.transaction():
        if not item.device:
            await conn.execute(sql.FORGET_DEVICES, item.group, item.node)
        await conn.execute(sql.SAVE_BIRTH, item.group, item.node, item.device, item.bd_seq, metrics)
