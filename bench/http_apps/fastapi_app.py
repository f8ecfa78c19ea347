"""The endpoints on FastAPI, written the usual way: pydantic models for the
body and the responses (`response_model`, which FastAPI validates and then
serializes to JSON in pydantic's Rust core), constraints declared on the
parameters. The OpenAPI document is generated from the same declarations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field, StrictFloat, StrictStr

from .common import DEFAULT_LIMIT, DEFAULT_METRIC, MAX_LIMIT, MAX_METRIC_LEN, POINTS, device_page

OPENAPI_PATH = "/openapi.json"


class Device(BaseModel):
    device_id: str
    site_id: str
    device_type: str
    status: str
    last_seen: datetime
    metadata: dict[str, Any]


class DevicePage(BaseModel):
    items: list[Device]
    next: str | None


class Point(BaseModel):
    time: datetime
    value: float


class Series(BaseModel):
    metric: str
    points: list[Point]


class TelemetryOut(BaseModel):
    device_id: str
    series: list[Series]


class TelemetryIn(BaseModel):
    # Strict where msgspec is: no numbers as device ids, no "1.5" strings or
    # booleans as values. Not model-wide: FastAPI validates the parsed JSON in
    # Python mode, where a strict datetime refuses strings.
    device_id: Annotated[StrictStr, Field(min_length=1)]
    timestamp: datetime
    data: dict[str, StrictFloat]


class Accepted(BaseModel):
    accepted: int


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
