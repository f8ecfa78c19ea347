"""The endpoints on Litestar, written the usual way: msgspec Structs for the
body and the responses (Litestar decodes and encodes them with msgspec),
constraints declared with `Parameter`. Litestar answers validation errors with
400; the API wants 422, so one exception handler maps them. The OpenAPI
document is generated from the same declarations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.openapi.config import OpenAPIConfig
from litestar.params import Parameter

from .common import DEFAULT_LIMIT, DEFAULT_METRIC, MAX_LIMIT, MAX_METRIC_LEN, POINTS, device_page

OPENAPI_PATH = "/schema/openapi.json"


class Device(msgspec.Struct):
    device_id: str
    site_id: str
    device_type: str
    status: str
    last_seen: datetime
    metadata: dict[str, Any]


class DevicePage(msgspec.Struct):
    items: list[Device]
    next: str | None


class Point(msgspec.Struct):
    time: datetime
    value: float


class Series(msgspec.Struct):
    metric: str
    points: list[Point]


class TelemetryOut(msgspec.Struct):
    device_id: str
    series: list[Series]


class TelemetryIn(msgspec.Struct):
    device_id: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: datetime
    data: dict[str, float]


class Accepted(msgspec.Struct):
    accepted: int


@get("/api/v1/devices")
async def devices(
    site: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> DevicePage:
    rows, next_cursor = device_page(site, limit, cursor)
    return DevicePage(items=[Device(**row) for row in rows], next=next_cursor)


@get("/api/v1/telemetry/{device_id:str}")
async def telemetry(
    device_id: str,
    start: datetime,
    end: datetime,
    metric: Annotated[str, Parameter(min_length=1, max_length=MAX_METRIC_LEN)] = DEFAULT_METRIC,
) -> TelemetryOut:
    points = [Point(time=t, value=v) for t, v in POINTS]
    return TelemetryOut(device_id=device_id, series=[Series(metric=metric, points=points)])


@post("/api/v1/telemetry", status_code=202)
async def ingest(data: TelemetryIn) -> Accepted:
    return Accepted(accepted=len(data.data))


def _unprocessable(request: Request[Any, Any, Any], error: ValidationException) -> Response[Any]:
    return Response({"detail": error.detail, "errors": error.extra}, status_code=422)


app = Litestar(
    route_handlers=[devices, telemetry, ingest],
    exception_handlers={ValidationException: _unprocessable},
    openapi_config=OpenAPIConfig(title="bridge API", version="1"),
)
