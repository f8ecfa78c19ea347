"""The alarm endpoints' logic, apart from HTTP (bridge.api.alarm_routes
declares the routes): recent alarms fleet-wide, acknowledging and clearing
one, and rule CRUD.

Contracts: a rule is stored only when bridge.alarms.rules accepts it; each
problem is answered as a 422 whose ``errors`` name the field (``reason`` is
``invalid_rule``). Acknowledging and clearing go through
bridge.alarms.store, which records the transition in the outbox in the same
transaction, so the evaluator's notifier publishes it. The cursor of
/analytics/anomalies is ``<created_at µs>_<id>`` of the last item: stable
while alarms are added (newer ones come before it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.alarms import store
from bridge.alarms.rules import RuleError, parse_rule
from bridge.api.params import check_id, page_size, time_range
from bridge.api.problems import ApiProblem, Json, bad_request

DAY_US = 86_400_000_000
Status = Literal["active", "acknowledged", "resolved"]
Severity = Literal["critical", "major", "minor", "warning"]
CURSOR_PATTERN = r"^[0-9]{1,20}_[0-9]{1,20}$"
Connect = Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No NUL: PostgreSQL's text cannot hold one.
    by: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\x00]+$")
    note: str | None = Field(None, max_length=1024, pattern=r"^[^\x00]*$")


class AlarmEndpoints:
    def __init__(self, connect: Connect, max_days: int, default_page: int, max_page: int) -> None:
        self._connect = connect
        self._max_days = max_days
        self._page = (default_page, max_page)

    @contextlib.asynccontextmanager
    async def _db(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connect() as conn:
            try:
                yield conn
            except asyncpg.UndefinedTableError:
                raise ApiProblem(
                    503, "Schema Missing", "the alarm tables are missing; run `bridge db migrate`"
                ) from None

    async def anomalies(
        self,
        *,
        start: str | None,
        end: str | None,
        site: str | None,
        device_id: str | None,
        severity: Severity | None,
        status: Status | None,
        after: str | None,
        limit: int | None,
        now_us: int,
    ) -> Json:
        """Alarms that started in [start, end) (default: the last 24 hours),
        newest first."""
        for name, value in (("site", site), ("device_id", device_id)):
            if value is not None:
                check_id(value, name, 128)
        if start is None and end is None:
            start_us, end_us = now_us - DAY_US, now_us + 1
        else:
            start_us, end_us = time_range(start, end, now_us=now_us, max_days=self._max_days)
        size = page_size(limit, *self._page)
        cursor_at, cursor_id = _cursor(after)
        async with self._db() as conn:
            rows = await conn.fetch(
                store.sql("anomalies"),
                store.when(start_us),
                store.when(end_us),
                site,
                device_id,
                severity,
                status,
                cursor_at,
                cursor_id,
                size + 1,
            )
        more = len(rows) > size
        rows = rows[:size]
        last = rows[-1] if rows else None
        return {
            "start": store.when(start_us).isoformat(),
            "end": store.when(end_us).isoformat(),
            "items": [store.alert_body(r) for r in rows],
            "next": f"{_us(last['created_at'])}_{last['id']}" if more and last else None,
        }

    async def acknowledge(self, alert_id: int, body: bytes, key_name: str) -> Json:
        ack = _ack_body(body)
        async with self._db() as conn:
            row = await store.acknowledge(conn, alert_id, ack.by or key_name, ack.note)
        if row is None:
            raise ApiProblem(404, "Not Found", f"no alarm {alert_id}")
        if row["status"] == "resolved":
            raise ApiProblem(
                409, "Conflict", f"alarm {alert_id} is already cleared; there is nothing to ack"
            )
        return store.alert_body(row)

    async def clear(self, alert_id: int, body: bytes, key_name: str) -> Json:
        ack = _ack_body(body)
        async with self._db() as conn:
            row = await store.resolve(conn, alert_id, ack.by or key_name)
        if row is None:
            raise ApiProblem(404, "Not Found", f"no alarm {alert_id}")
        return store.alert_body(row)

    # ------------------------------------------------------------ rules
    async def rules(self) -> Json:
        async with self._db() as conn:
            return {"items": [rule_body(r) for r in await store.rule_rows(conn)]}

    async def rule(self, rule_id: int) -> Json:
        async with self._db() as conn:
            row = await conn.fetchrow(
                "SELECT id, name, spec, enabled, created_at, updated_at FROM alarm_rules "
                "WHERE id = $1",
                rule_id,
            )
        if row is None:
            raise ApiProblem(404, "Not Found", f"no rule {rule_id}")
        return rule_body(row)

    async def create_rule(self, body: bytes) -> Json:
        rule = _rule_of(body)
        async with self._db() as conn:
            row = await store.insert_rule(conn, rule)
        if row is None:
            raise ApiProblem(
                409, "Conflict", f"a rule named {rule.name!r} exists; PUT it by id to replace it"
            )
        return rule_body(row)

    async def replace_rule(self, rule_id: int, body: bytes) -> Json:
        rule = _rule_of(body)
        async with self._db() as conn:
            try:
                row = await store.update_rule(conn, rule_id, rule)
            except asyncpg.UniqueViolationError:
                raise ApiProblem(409, "Conflict", f"another rule is named {rule.name!r}") from None
        if row is None:
            raise ApiProblem(404, "Not Found", f"no rule {rule_id}")
        return rule_body(row)

    async def delete_rule(self, rule_id: int) -> None:
        async with self._db() as conn:
            if not await store.delete_rule(conn, rule_id):
                raise ApiProblem(404, "Not Found", f"no rule {rule_id}")


def rule_body(row: asyncpg.Record) -> Json:
    spec = row["spec"]
    spec = orjson.loads(spec) if isinstance(spec, str) else spec
    return {
        "id": row["id"],
        "name": row["name"],
        "enabled": row["enabled"],
        **spec,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _rule_of(body: bytes) -> Any:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object: a rule (see the AlarmRuleSpec schema)")
    try:
        return parse_rule(data)
    except RuleError as exc:
        raise ApiProblem(
            422,
            "Invalid Rule",
            f"{len(exc.problems)} problem(s); nothing was stored. {exc}",
            extra={
                "errors": [
                    {
                        "reading": None,
                        "metric": None,
                        "reason": "invalid_rule",
                        "detail": f"{f}: {m}",
                    }
                    for f, m in exc.problems
                ]
            },
        ) from None


def _ack_body(body: bytes) -> AckBody:
    if not body.strip():
        return AckBody(by=None, note=None)
    try:
        return AckBody.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise bad_request(f'the body must be {{"by"?: str, "note"?: str}}: {problems}') from None


def _cursor(after: str | None) -> tuple[dt.datetime | None, int | None]:
    if after is None:
        return None, None
    at, _, alert_id = after.partition("_")
    if not (at.isdigit() and alert_id.isdigit()) or len(at) > 17 or len(alert_id) > 18:
        raise bad_request("after must be the 'next' cursor of the last page")
    try:
        return store.when(int(at)), int(alert_id)
    except (ValueError, OverflowError, OSError):
        raise bad_request("after must be the 'next' cursor of the last page") from None


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _us(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(microseconds=1)
