"""The alarm routes (logic in bridge.api.alarms):

    GET    /api/v1/analytics/anomalies           recent alarms fleet-wide, filtered, paged
    POST   /api/v1/alerts/{id}/ack               acknowledge (write scope)
    POST   /api/v1/alerts/{id}/clear             clear by hand (write scope)
    GET    /api/v1/alarms/rules                  every rule
    POST   /api/v1/alarms/rules                  create (write scope; 422 names each problem)
    GET    /api/v1/alarms/rules/{id}             one rule
    PUT    /api/v1/alarms/rules/{id}             replace (write scope)
    DELETE /api/v1/alarms/rules/{id}             delete (write scope)

Bodies are read raw and checked by bridge.alarms.rules, so the API refuses
what the CLI refuses, with the same words; ``request_bodies`` puts their
schemas in the OpenAPI document.
"""

# No `from __future__ import annotations`: Litestar reads the annotations at runtime.
import time
from collections.abc import Callable
from typing import Annotated, Any

from litestar import Request, delete, get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from pydantic import TypeAdapter

from bridge.alarms.rules import Rule
from bridge.api import schemas
from bridge.api.alarms import CURSOR_PATTERN, AckBody, AlarmEndpoints, Severity, Status
from bridge.api.problems import COMMON, problem_spec
from bridge.api.service import Api

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
Token = Callable[[Request[Any, Any, Any]], str | None]
RuleId = Annotated[int, Parameter(ge=1, le=2**62)]
NOT_FOUND = {404: problem_spec("No such alarm or rule.")}
WRITE = {**COMMON, **NOT_FOUND, 409: problem_spec("The change conflicts; the detail says why.")}
BAD_RULE = {422: problem_spec("The rule is invalid; errors[] names each problem.")}


def alarm_routes(api: Api, token: Token) -> list[HTTPRouteHandler]:
    s = api.settings
    ends = AlarmEndpoints(api.connection, s.api.max_range_days, 100, s.api.max_page_size)
    Id = Annotated[str | None, Parameter(max_length=128, pattern=ID_PATTERN)]
    Time = Annotated[
        str | None,
        Parameter(max_length=64, description="RFC 3339 or epoch seconds, ms, µs or ns."),
    ]

    @get(
        "/api/v1/analytics/anomalies",
        responses=COMMON,
        summary="Recent alarms fleet-wide",
    )
    async def anomalies(
        request: Request[Any, Any, Any],
        *,
        start: Time = None,
        end: Time = None,
        site: Id = None,
        device_id: Id = None,
        severity: Severity | None = None,
        status: Status | None = None,
        after: Annotated[
            str | None,
            Parameter(max_length=40, pattern=CURSOR_PATTERN, description="The 'next' cursor."),
        ] = None,
        limit: Annotated[int | None, Parameter(ge=1, le=s.api.max_page_size)] = None,
    ) -> schemas.AlarmPage:
        """Alarms that started in [start, end), default the last 24 hours, newest
        first; each with its rule, severity, status (active, acknowledged,
        resolved), start and end, trigger and peak values."""
        await api.authorize(token(request), "read")
        return await ends.anomalies(  # type: ignore[return-value]
            start=start,
            end=end,
            site=site,
            device_id=device_id,
            severity=severity,
            status=status,
            after=after,
            limit=limit,
            now_us=time.time_ns() // 1000,
        )

    @post(
        "/api/v1/alerts/{alert_id:int}/ack",
        status_code=200,
        responses={**WRITE, 400: problem_spec("The body is not {by?, note?}.")},
        summary="Acknowledge an alarm",
    )
    async def ack(request: Request[Any, Any, Any], alert_id: RuleId) -> schemas.Alarm:
        """Active -> acknowledged, recording who (default: the key's name), when
        and the note. Acknowledging again changes nothing; a cleared alarm is a
        409. The transition is published like the others."""
        key = await api.authorize(token(request), "write")
        return await ends.acknowledge(alert_id, await request.body(), key.name)  # type: ignore[return-value]

    @post(
        "/api/v1/alerts/{alert_id:int}/clear",
        status_code=200,
        responses={**WRITE, 400: problem_spec("The body is not {by?, note?}.")},
        summary="Clear an alarm by hand",
    )
    async def clear(request: Request[Any, Any, Any], alert_id: RuleId) -> schemas.Alarm:
        """Active or acknowledged -> resolved, by hand. Clearing a cleared alarm
        changes nothing. The rule raises again only after its clear condition
        has held."""
        key = await api.authorize(token(request), "write")
        return await ends.clear(alert_id, await request.body(), key.name)  # type: ignore[return-value]

    @get("/api/v1/alarms/rules", responses=COMMON, summary="List alarm rules")
    async def rules(request: Request[Any, Any, Any]) -> schemas.AlarmRules:
        await api.authorize(token(request), "read")
        return await ends.rules()  # type: ignore[return-value]

    @post(
        "/api/v1/alarms/rules",
        status_code=201,
        responses={**WRITE, **BAD_RULE},
        summary="Create an alarm rule",
    )
    async def create(request: Request[Any, Any, Any]) -> schemas.AlarmRule:
        """A rule (the AlarmRuleSpec schema; `bridge alarms --help` describes the
        kinds). The evaluator picks it up within alarms.rules_refresh_s."""
        await api.authorize(token(request), "write")
        return await ends.create_rule(await request.body())  # type: ignore[return-value]

    @get(
        "/api/v1/alarms/rules/{rule_id:int}",
        responses={**COMMON, **NOT_FOUND},
        summary="One alarm rule",
    )
    async def one(request: Request[Any, Any, Any], rule_id: RuleId) -> schemas.AlarmRule:
        await api.authorize(token(request), "read")
        return await ends.rule(rule_id)  # type: ignore[return-value]

    @put(
        "/api/v1/alarms/rules/{rule_id:int}",
        responses={**WRITE, **BAD_RULE},
        summary="Replace an alarm rule",
    )
    async def replace(request: Request[Any, Any, Any], rule_id: RuleId) -> schemas.AlarmRule:
        """The rule's series start over; its open alarms clear by their condition."""
        await api.authorize(token(request), "write")
        return await ends.replace_rule(rule_id, await request.body())  # type: ignore[return-value]

    @delete(
        "/api/v1/alarms/rules/{rule_id:int}",
        status_code=204,
        responses={**COMMON, **NOT_FOUND},
        summary="Delete an alarm rule",
    )
    async def remove(request: Request[Any, Any, Any], rule_id: RuleId) -> None:
        """Its alarms stay in the history, no longer linked to a rule."""
        await api.authorize(token(request), "write")
        await ends.delete_rule(rule_id)

    return [anomalies, ack, clear, rules, create, one, replace, remove]


def request_bodies(doc: dict[str, Any]) -> None:
    """Adds the bodies the handlers read raw to the OpenAPI document."""
    rule_schema = TypeAdapter(Rule).json_schema(ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(rule_schema.pop("$defs", {}))
    components["AlarmRuleSpec"] = rule_schema
    components["AckRequest"] = AckBody.model_json_schema()
    bodies = {
        ("/api/v1/alarms/rules", "post"): ("AlarmRuleSpec", True),
        ("/api/v1/alarms/rules/{rule_id}", "put"): ("AlarmRuleSpec", True),
        ("/api/v1/alerts/{alert_id}/ack", "post"): ("AckRequest", False),
        ("/api/v1/alerts/{alert_id}/clear", "post"): ("AckRequest", False),
    }
    for (path, method), (name, required) in bodies.items():
        doc["paths"][path][method]["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
