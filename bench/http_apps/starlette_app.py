"""The endpoints on plain Starlette: query parameters checked by hand, the
request body decoded and validated by msgspec (a typed Struct), responses
serialized by orjson (both already dependencies of the bridge).

Starlette generates no OpenAPI from code. Its `SchemaGenerator` only collects
each route's path and method and parses a YAML document that you write in the
endpoint's docstring: parameters, bodies and response schemas are all by hand
(msgspec.json.schema_components could generate the component schemas from
the Structs). The document served here is what the docstrings below give,
which is deliberately the minimum: a summary and the status codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from .common import DEFAULT_LIMIT, DEFAULT_METRIC, MAX_LIMIT, MAX_METRIC_LEN, POINTS, device_page

OPENAPI_PATH = "/openapi.json"
_JSON = "application/json"
_OPTS = orjson.OPT_UTC_Z


class TelemetryIn(msgspec.Struct):
    device_id: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: datetime
    data: dict[str, float]


_decode_reading = msgspec.json.Decoder(TelemetryIn).decode


def _json(content: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content, option=_OPTS), status_code, media_type=_JSON)


def _invalid(loc: str, msg: str) -> Response:
    return _json({"detail": [{"loc": loc, "msg": msg}]}, 422)


async def devices(request: Request) -> Response:
    """
    summary: List devices
    responses:
      "200":
        description: A page of devices.
      "422":
        description: Invalid query parameters.
    """
    query = request.query_params
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return _invalid("query.limit", "not an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return _invalid("query.limit", f"must be in 1..{MAX_LIMIT}")
    items, cursor = device_page(query.get("site"), limit, query.get("cursor"))
    return _json({"items": items, "next": cursor})


async def telemetry(request: Request) -> Response:
    """
    summary: One device's telemetry series
    responses:
      "200":
        description: The series.
      "422":
        description: Invalid query parameters.
    """
    query = request.query_params
    metric = query.get("metric", DEFAULT_METRIC)
    if not 1 <= len(metric) <= MAX_METRIC_LEN:
        return _invalid("query.metric", f"must be 1..{MAX_METRIC_LEN} characters")
    for name in ("start", "end"):
        try:
            datetime.fromisoformat(query[name])
        except KeyError:
            return _invalid(f"query.{name}", "required")
        except ValueError:
            return _invalid(f"query.{name}", "not an RFC 3339 datetime")
    points = [{"time": t, "value": v} for t, v in POINTS]
    return _json(
        {
            "device_id": request.path_params["device_id"],
            "series": [{"metric": metric, "points": points}],
        }
    )


async def ingest(request: Request) -> Response:
    """
    summary: Accept one reading
    responses:
      "202":
        description: Accepted.
      "422":
        description: Invalid body.
    """
    try:
        reading = _decode_reading(await request.body())
    except msgspec.DecodeError as error:  # ValidationError is a subclass
        return _invalid("body", str(error))
    return _json({"accepted": len(reading.data)}, 202)


_schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "bridge API", "version": "1"}})


async def openapi(request: Request) -> Response:
    return _json(_schemas.get_schema(routes=app.routes))


app = Starlette(
    routes=[
        Route("/api/v1/devices", devices, methods=["GET"]),
        Route("/api/v1/telemetry/{device_id}", telemetry, methods=["GET"]),
        Route("/api/v1/telemetry", ingest, methods=["POST"]),
        Route(OPENAPI_PATH, openapi, include_in_schema=False),
    ]
)
