"""FastAPI as in fastapi_app, except that the response models are TypedDicts
instead of pydantic BaseModels. FastAPI still validates and serializes the
responses and documents them in OpenAPI, but pydantic checks dicts in place
instead of building a model instance per object: the cheaper way to write
FastAPI when a response holds thousands of objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query
from typing_extensions import TypedDict  # pydantic wants this one on Python < 3.12

from .common import DEFAULT_LIMIT, DEFAULT_METRIC, MAX_LIMIT, MAX_METRIC_LEN, POINTS, device_page
from .fastapi_app import Accepted, TelemetryIn

OPENAPI_PATH = "/openapi.json"


class Device(TypedDict):
    device_id: str
    site_id: str
    device_type: str
    status: str
    last_seen: datetime
    metadata: dict[str, Any]


class DevicePage(TypedDict):
    items: list[Device]
    next: str | None


class Point(TypedDict):
    time: datetime
    value: float


class Series(TypedDict):
    metric: str
    points: list[Point]


class TelemetryOut(TypedDict):
    device_id: str
    series: list[Series]


app = FastAPI(title="bridge API", version="1", openapi_url=OPENAPI_PATH)


@app.get("/api/v1/devices", response_model=DevicePage)
async def devices(
    site: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    items, next_cursor = device_page(site, limit, cursor)
    return {"items": items, "next": next_cursor}


@app.get("/api/v1/telemetry/{device_id}", response_model=TelemetryOut)
async def telemetry(
    device_id: str,
    start: datetime,
    end: datetime,
    metric: Annotated[str, Query(min_length=1, max_length=MAX_METRIC_LEN)] = DEFAULT_METRIC,
) -> dict[str, Any]:
    points = [{"time": t, "value": v} for t, v in POINTS]
    return {"device_id": device_id, "series": [{"metric": metric, "points": points}]}


@app.post("/api/v1/telemetry", status_code=202)
async def ingest(reading: TelemetryIn) -> Accepted:
    return Accepted(accepted=len(reading.data))
