"""Alarms in PostgreSQL: rules, the evaluator's state, the alarm lifecycle in
``alerts``, and the outbox of transitions. Every query is in sql/ beside
this module.

Invariants:
  * ``commit`` writes one evaluation step whole or not at all: the series
    state, the alarms opened and closed, their events and the stream position
    read up to, in one transaction. After a crash the evaluator resumes from
    that position with that state, so a transition is written once.
  * At most one open (active or acknowledged) alarm per (rule, series): the
    unique index idx_alerts_open_per_series refuses a second one, whatever
    the caller does (a raise that finds one open adopts it).
  * Every transition (raised, acknowledged, cleared) adds a row to
    alarm_events in the transaction that makes it; notifications are sent
    from there (bridge.alarms.notify), so none is lost to a crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bridge.alarms.evaluate import Series, SeriesKey, Transition
from bridge.alarms.rules import AnyRule, RuleError, from_row, spec_of

SQL = Path(__file__).resolve().parent / "sql"


@cache
def sql(name: str) -> str:
    return (SQL / f"{name}.sql").read_text()


def when(time_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_us / 1e6, dt.UTC)


# ------------------------------------------------------------ rules
async def load_rules(conn: asyncpg.Connection) -> dict[int, AnyRule]:
    """Every stored rule that still validates (one that does not is skipped:
    the API and the CLI never store one)."""
    rules: dict[int, AnyRule] = {}
    for row in await conn.fetch(sql("rules_list")):
        try:
            rules[row["id"]] = from_row(row["name"], orjson.loads(row["spec"]), row["enabled"])
        except RuleError:
            continue
    return rules


async def rule_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql("rules_list")))


def selected_metrics(rules: dict[int, AnyRule]) -> frozenset[str] | None:
    """The metrics some enabled rule selects; None when one selects every metric."""
    metrics: set[str] = set()
    for rule in rules.values():
        if not rule.enabled:
            continue
        if rule.select.metric is None:
            return None
        metrics.add(rule.select.metric)
    return frozenset(metrics)


async def insert_rule(conn: asyncpg.Connection, rule: AnyRule) -> asyncpg.Record | None:
    """The new row, or None when the name is taken."""
    spec = orjson.dumps(spec_of(rule)).decode()
    row: asyncpg.Record | None = await conn.fetchrow(
        sql("rule_insert"), rule.name, spec, rule.enabled
    )
    return row


async def upsert_rule(conn: asyncpg.Connection, rule: AnyRule) -> bool:
    """Creates or replaces by name; True when something changed."""
    spec = orjson.dumps(spec_of(rule)).decode()
    async with conn.transaction():
        rule_id = await conn.fetchval(sql("rule_upsert"), rule.name, spec, rule.enabled)
        if rule_id is not None:
            await conn.execute("DELETE FROM alarm_series WHERE rule_id = $1", rule_id)
    return rule_id is not None


async def update_rule(
    conn: asyncpg.Connection, rule_id: int, rule: AnyRule
) -> asyncpg.Record | None:
    spec = orjson.dumps(spec_of(rule)).decode()
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT spec, enabled FROM alarm_rules WHERE id = $1 FOR UPDATE", rule_id
        )
        row: asyncpg.Record | None = await conn.fetchrow(
            sql("rule_update"), rule_id, rule.name, spec, rule.enabled
        )
        if before is not None and (orjson.loads(before["spec"]), before["enabled"]) != (
            orjson.loads(spec),
            rule.enabled,
        ):
            # The evaluator starts a changed rule's series over; so must a restarted one.
            await conn.execute("DELETE FROM alarm_series WHERE rule_id = $1", rule_id)
    return row


async def delete_rule(conn: asyncpg.Connection, rule_id: int) -> bool:
    return (
        await conn.fetchval("DELETE FROM alarm_rules WHERE id = $1 RETURNING id", rule_id)
        is not None
    )


# ------------------------------------------------------------ evaluator state
async def load_series(conn: asyncpg.Connection) -> dict[SeriesKey, Series]:
    return {
        (r["rule_id"], r["device_id"], r["metric"]): Series.load(orjson.loads(r["state"]))
        for r in await conn.fetch(sql("series_load"))
    }


async def checkpoint(conn: asyncpg.Connection, stream: str) -> str:
    last: str | None = await conn.fetchval(sql("checkpoint_get"), stream)
    return last or "0-0"


async def commit(
    conn: asyncpg.Connection,
    *,
    stream: str,
    last_id: str,
    dirty: Iterable[tuple[SeriesKey, Series]],
    transitions: list[Transition],
    rules: dict[int, AnyRule],
) -> None:
    """One evaluation step, in one transaction (see the module's invariants)."""
    dirty = list(dirty)
    async with conn.transaction():
        for t in transitions:
            await _apply(conn, t, rules.get(t.rule_id))
        peaks = [(k[0], k[1], k[2], s.peak) for k, s in dirty if s.open and s.peak is not None]
        if peaks:
            await conn.executemany(sql("alert_peak"), peaks)
        if dirty:
            await conn.execute(sql("series_stage"))
            await conn.copy_records_to_table(
                "alarm_series_in",
                records=[(k[0], k[1], k[2], orjson.dumps(s.dump()).decode()) for k, s in dirty],
            )
            await conn.execute(sql("series_merge"))
        await conn.execute(sql("checkpoint_put"), stream, last_id)


async def _apply(conn: asyncpg.Connection, t: Transition, rule: AnyRule | None) -> None:
    at = when(t.at_us)
    if t.kind == "raised":
        if rule is None:
            return
        details = orjson.dumps({"rule": rule.name, "kind": rule.kind}).decode()
        alert_id = await conn.fetchval(
            sql("alert_raise"),
            t.device_id,
            t.metric,
            rule.severity,
            at,
            details,
            t.rule_id,
            t.site_id,
            t.value,
        )
        if alert_id is None:
            return  # one is open already: the guard held
    else:
        alert_id = await conn.fetchval(
            sql("alert_clear"), t.rule_id, t.device_id, t.metric, at, "auto", t.peak
        )
        if alert_id is None:
            return  # cleared by hand before: nothing to close
    await add_event(conn, alert_id, t.kind, at)


async def add_event(
    conn: asyncpg.Connection, alert_id: int, transition: str, at: dt.datetime
) -> None:
    """Records a transition in the outbox, with the alarm as it now stands."""
    row = await conn.fetchrow(sql("alert_get"), alert_id)
    body = alert_body(row) | {"transition": transition, "at": at.isoformat()}
    await conn.execute(sql("event_insert"), alert_id, transition, at, orjson.dumps(body).decode())


def alert_body(row: asyncpg.Record) -> dict[str, Any]:
    """An alarm as the API, MQTT and the webhook show it."""
    details = row["details"]
    details = orjson.loads(details) if isinstance(details, str) else details
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "rule": details.get("rule"),
        "kind": details.get("kind"),
        "severity": row["severity"],
        "status": row["status"],
        "device_id": row["device_id"],
        "site_id": row["site_id"],
        "metric": row["metric"] or None,
        "started_at": _iso(row["created_at"]),
        "ended_at": _iso(row["resolved_at"]),
        "value": row["trigger_value"],
        "peak": row["peak_value"],
        "acknowledged_by": row["acknowledged_by"],
        "acknowledged_at": _iso(row["acknowledged_at"]),
        "note": row["ack_note"],
        "resolved_by": row["resolved_by"],
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# ------------------------------------------------------------ by hand
async def acknowledge(
    conn: asyncpg.Connection, alert_id: int, who: str, note: str | None
) -> asyncpg.Record | None:
    """Acknowledges an active alarm; returns the alarm as it stands (None: no such alarm)."""
    async with conn.transaction():
        if await conn.fetchval(sql("alert_ack"), alert_id, who, note) is not None:
            await add_event(conn, alert_id, "acknowledged", dt.datetime.now(dt.UTC))
        row: asyncpg.Record | None = await conn.fetchrow(sql("alert_get"), alert_id)
        return row


async def resolve(conn: asyncpg.Connection, alert_id: int, who: str) -> asyncpg.Record | None:
    """Clears an open alarm by hand; returns the alarm as it stands (None: no such alarm)."""
    async with conn.transaction():
        if await conn.fetchval(sql("alert_resolve"), alert_id, who) is not None:
            await add_event(conn, alert_id, "cleared", dt.datetime.now(dt.UTC))
        row: asyncpg.Record | None = await conn.fetchrow(sql("alert_get"), alert_id)
        return row


# ------------------------------------------------------------ outbox
async def unsent(conn: asyncpg.Connection, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
    return [
        (r["id"], orjson.loads(r["body"])) for r in await conn.fetch(sql("events_unsent"), limit)
    ]


async def mark_sent(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute(sql("events_sent"), ids)
