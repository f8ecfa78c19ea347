"""The read API as a Litestar app (chosen in bench/bench_http.py: the cheapest
framework that derives request validation and the OpenAPI document from the
same declarations). The handlers only translate HTTP to bridge.api.service;
what goes wrong is answered as a problem document by bridge.api.problems'
exception handlers.

Routes (all /api/v1 routes need an API key):

    GET  /api/v1/devices                     registry, filtered, paged by cursor
    GET  /api/v1/devices/{device_id}         registry row + latest values
    GET  /api/v1/telemetry/{device_id}       a series: Redis window + database
    GET  /api/v1/telemetry/{device_id}/text  string values (telemetry_text)
    POST /api/v1/telemetry                   one reading, answered once durable
    POST /api/v1/telemetry/batch             many readings, all or nothing
    GET  /api/v1/analytics/summary           min, max, avg, count, last
    GET  /api/v1/analytics/anomalies, POST /api/v1/alerts/{id}/ack,
         /api/v1/alarms/rules...             alarms (bridge.api.alarm_routes)
    GET  /healthz /readyz /metrics /openapi.json /docs
    GET  /  /static/*                        the live view (bridge/api/static), open;
                                             its data comes from /api/v1 with a key
"""

# No `from __future__ import annotations` here: Litestar reads the handlers'
# annotations at runtime, and they use bounds from the settings (locals).
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import Parameter
from litestar.static_files import create_static_files_router
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge import __version__
from bridge.api import schemas
from bridge.api.alarm_routes import alarm_routes, request_bodies
from bridge.api.metrics import ApiMetrics, timing
from bridge.api.problems import (
    COMMON,
    ApiProblem,
    on_error,
    on_http,
    on_problem,
    problem_response,
    problem_spec,
)
from bridge.api.service import Api
from bridge.config import Settings

log = logging.getLogger("bridge.api")
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
STATIC = Path(__file__).parent / "static"


def token(request: Request[Any, Any, Any]) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or auth


def create_app(settings: Settings, metrics: ApiMetrics | None = None) -> Litestar:
    """The app; the connections open when it starts (its lifespan)."""
    api = Api(settings, metrics)
    a, lim = settings.api, settings.limits
    DeviceId = Annotated[
        str, Parameter(min_length=1, max_length=lim.max_id_len, pattern=ID_PATTERN)
    ]
    Time = Annotated[
        str | None,
        Parameter(
            max_length=64,
            description="RFC 3339 (2026-11-27T10:00:00Z) or epoch seconds, ms, µs or ns.",
        ),
    ]
    Metrics = Annotated[
        list[str] | None,
        Parameter(
            description="Metric(s) to return; repeat for several. Default: all.", max_items=64
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with api:
            log.info("read API on http://%s:%d/api/v1/ (docs at /docs)", a.host, a.port)
            yield

    @get("/api/v1/devices", responses=COMMON, summary="List devices")
    async def devices(
        request: Request[Any, Any, Any],
        *,
        site: Annotated[
            str | None, Parameter(max_length=lim.max_id_len, pattern=ID_PATTERN)
        ] = None,
        device_type: Annotated[
            str | None, Parameter(query="type", max_length=lim.max_id_len, pattern=ID_PATTERN)
        ] = None,
        status: Literal["online", "offline"] | None = None,
        after: Annotated[
            str | None,
            Parameter(
                max_length=lim.max_id_len,
                pattern=ID_PATTERN,
                description="The 'next' cursor of the last page.",
            ),
        ] = None,
        limit: Annotated[int | None, Parameter(ge=1, le=a.max_page_size)] = None,
    ) -> schemas.DevicePage:
        """The registry in device_id order. A device is online when its last point
        is newer than api.online_after_s; a Sparkplug device is online from its
        BIRTH to its DEATH."""
        await api.authorize(token(request), "read")
        return await api.devices(  # type: ignore[return-value]
            site=site, device_type=device_type, status=status, after=after, limit=limit
        )

    @get(
        "/api/v1/devices/{device_id:str}",
        responses={**COMMON, 404: problem_spec("No such device in the registry.")},
        summary="One device with its latest values",
        response_headers=None,
    )
    async def device(
        request: Request[Any, Any, Any], device_id: DeviceId
    ) -> Response[schemas.DeviceDetail]:
        """The registry row and the newest value of each metric: from Redis, or
        from the database when Redis cannot answer (X-Cache says which)."""
        await api.authorize(token(request), "read")
        body, headers = await api.device(device_id)
        return Response(body, headers=headers)  # type: ignore[arg-type]

    @get(
        "/api/v1/telemetry/{device_id:str}",
        responses={**COMMON, 422: problem_spec("step=raw over more points than allowed.")},
        summary="A device's series",
    )
    async def telemetry(
        request: Request[Any, Any, Any],
        device_id: DeviceId,
        *,
        metric: Metrics = None,
        start: Time = None,
        end: Time = None,
        step: Literal["auto", "raw", "1m", "1h"] = "auto",
    ) -> Response[schemas.Telemetry]:
        """Points in [start, end), default the last hour. The Redis window serves
        the recent part and the database the rest, joined without gap or
        duplicate. step=auto returns raw points when they fit api.series_points
        per series, else 1-minute, else 1-hour buckets (value is the average)."""
        await api.authorize(token(request), "read")
        body, headers = await api.telemetry(
            device_id, metrics=metric, start=start, end=end, step=step
        )
        return Response(body, headers=headers)  # type: ignore[arg-type]

    @get(
        "/api/v1/telemetry/{device_id:str}/text",
        responses=COMMON,
        summary="A device's string values",
    )
    async def telemetry_text(
        request: Request[Any, Any, Any],
        device_id: DeviceId,
        *,
        metric: Metrics = None,
        start: Time = None,
        end: Time = None,
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1000,
    ) -> schemas.TextTelemetry:
        """String values (a line-protocol string field, a Sparkplug String) in
        [start, end), default the last hour, from the database, ascending by
        metric then time; at most `limit`, with `truncated` true when more lie
        in the range."""
        await api.authorize(token(request), "read")
        return await api.texts(  # type: ignore[return-value]
            device_id, metrics=metric, start=start, end=end, limit=limit
        )

    @get("/api/v1/analytics/summary", responses=COMMON, summary="Summary per series")
    async def summary(
        request: Request[Any, Any, Any],
        *,
        device_id: Annotated[
            str | None,
            Parameter(min_length=1, max_length=lim.max_id_len, pattern=ID_PATTERN),
        ] = None,
        metric: Annotated[list[str] | None, Parameter(max_items=64)] = None,
        start: Time = None,
        end: Time = None,
    ) -> schemas.Summary:
        """count, min, max, avg and last of each series in [start, end) (default
        the last hour), from the 1-hour and 1-minute rollups and the raw rows
        at the ragged ends. Without device_id: every device."""
        await api.authorize(token(request), "read")
        return await api.summary(  # type: ignore[return-value]
            device_id=device_id, metrics=metric, start=start, end=end
        )

    submit_responses = {
        **COMMON,
        413: problem_spec("The body is larger, or holds more points, than allowed."),
        422: problem_spec("Some readings are invalid; errors[] lists each. Nothing was stored."),
    }

    @post(
        "/api/v1/telemetry",
        status_code=202,
        responses=submit_responses,
        summary="Submit one reading",
    )
    async def submit(request: Request[Any, Any, Any]) -> schemas.Accepted:
        """A reading in the seed's shape. Answered once its points are durable: a
        202 with `durable: committed` means committed to the database; with
        `durable: broker` (api.ingest_via = broker), accepted by the broker at
        QoS 1 and stored by the bridge shortly after. Sending it again is
        harmless (stored once)."""
        await api.authorize(token(request), "write")
        return await api.submit(await request.body(), batch=False)  # type: ignore[return-value]

    @post(
        "/api/v1/telemetry/batch",
        status_code=202,
        responses=submit_responses,
        summary="Submit many readings",
    )
    async def submit_batch(request: Request[Any, Any, Any]) -> schemas.Accepted:
        """{"readings": [...]}: all stored, or none when any point is invalid."""
        await api.authorize(token(request), "write")
        return await api.submit(await request.body(), batch=True)  # type: ignore[return-value]

    @get("/healthz", security=[], summary="Liveness", include_in_schema=True)
    async def healthz() -> schemas.Health:
        # The pid lets `bridge doctor` on the same host find its memory limit.
        return {"status": "ok", "pid": os.getpid()}

    @get(
        "/readyz",
        security=[],
        summary="Readiness: the database answers",
        responses={503: problem_spec("Not ready; checks[] says why.")},
    )
    async def readyz(request: Request[Any, Any, Any]) -> Response[schemas.Health]:
        ok, body = await api.ready()
        if not ok:
            problem = ApiProblem(
                503,
                "Not Ready",
                body["checks"].get("database", "not ready"),
                extra={"checks": body["checks"]},
            )
            return problem_response(problem, request.url.path)
        return Response(body)  # type: ignore[arg-type]

    @get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
    async def metrics_endpoint() -> bytes:
        return generate_latest(api.metrics.registry)

    @get("/", include_in_schema=False, media_type=MediaType.HTML)
    async def live_view() -> bytes:
        """The live view page; it asks for a key and reads /api/v1 with it."""
        return (STATIC / "index.html").read_bytes()

    spec_cache: dict[str, bytes] = {}

    @get("/openapi.json", include_in_schema=False, media_type=MediaType.JSON)
    async def openapi(request: Request[Any, Any, Any]) -> bytes:
        if "doc" not in spec_cache:
            spec_cache["doc"] = msgspec.json.encode(openapi_document(request.app))
        return spec_cache["doc"]

    return Litestar(
        route_handlers=[
            devices,
            device,
            telemetry,
            telemetry_text,
            summary,
            submit,
            submit_batch,
            healthz,
            readyz,
            metrics_endpoint,
            openapi,
            live_view,
            *alarm_routes(api, token),
            create_static_files_router("/static", [STATIC], include_in_schema=False),
        ],
        lifespan=[lifespan],
        exception_handlers={ApiProblem: on_problem, HTTPException: on_http, Exception: on_error},
        middleware=[timing(api.metrics)],
        cors_config=CORSConfig(
            allow_origins=a.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["X-Cache", "X-Database", "Retry-After"],
        )
        if a.cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="MQTT bridge read API",
            version=__version__,
            description="Recent telemetry from Redis, history from TimescaleDB/PostgreSQL, "
            "and HTTP ingest. Errors are RFC 9457 problem documents.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A key from `bridge apikey create` (also accepted as X-API-Key).",
                    )
                }
            ),
            security=[{"apiKey": []}],
        ),
        request_max_body_size=lim.max_payload_bytes,
        debug=False,
    )


def openapi_document(app: Litestar) -> dict[str, Any]:
    """Litestar's document, plus what it cannot see: the request bodies, which
    the handlers read raw so that the codecs' own rules apply to them, and the
    probes being open."""
    doc: dict[str, Any] = app.openapi_schema.to_schema()
    names = {"/api/v1/telemetry": schemas.Reading, "/api/v1/telemetry/batch": schemas.ReadingBatch}
    _, components = msgspec.json.schema_components(
        [schemas.ReadingBatch], ref_template="#/components/schemas/{name}"
    )
    doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
    for path, kind in names.items():
        op = doc["paths"][path]["post"]
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{kind.__name__}"}}
            },
        }
    request_bodies(doc)
    for path in ("/healthz", "/readyz"):  # open to probes; Litestar drops an empty list
        doc["paths"][path]["get"]["security"] = []
    return doc
