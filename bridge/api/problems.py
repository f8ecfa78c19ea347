"""The API's errors and the RFC 9457 problem documents they are answered with.

Every failure an endpoint can meet ends as an ApiProblem: a status, a short
title and a detail that says what to do, sent as ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail`` and ``instance`` (the
request's path), plus any extra members (``errors``, ``reason``,
``checks``). The database being down is a 503, never a 500; Redis being
down is not an error at all (reads fall back to the database).

The API's branch of the error tree (bridge.errors has the rest):

    BridgeError                (core.errors)
    └── ApiError               a request the API cannot serve as asked
        ├── ApiProblem         answered as it says (status, title, detail)
        ├── TooManyPoints      (bridge.api.series) step=raw over more points
        │                      than an answer may carry: answered 422
        ├── BadBody            (bridge.api.ingest) the body is not readings
        │                      at all: answered 400 or 413
        └── Unavailable        (bridge.api.ingest) the points were not
                               committed now: answered 503; retry

Anything else an endpoint raises is a bug: a 500 whose detail says it is
logged, with the traceback in the log and never in the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from bridge.api import schemas
from core.errors import BridgeError

log = logging.getLogger("bridge.api")
PROBLEM = "application/problem+json"
Json = dict[str, Any]


class ApiError(BridgeError):
    """A request the API cannot serve as asked."""


class ApiProblem(ApiError):
    """An RFC 9457 problem: the status, a short title and what to do."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        extra: Json | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, instance: str) -> Json:
        return {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }


def bad_request(detail: str, **extra: Any) -> ApiProblem:
    return ApiProblem(400, "Bad Request", detail, extra=extra)


def problem_spec(description: str) -> ResponseSpec:
    """A problem answer, for the OpenAPI document."""
    return ResponseSpec(schemas.Problem, description=description, media_type=PROBLEM)


COMMON = {
    400: problem_spec("The request's parameters are invalid; the detail says which."),
    401: problem_spec("No API key, or an unknown or revoked one."),
    403: problem_spec("The key lacks the scope this route needs."),
    503: problem_spec("The database cannot answer now; retry after Retry-After seconds."),
}
"""The problems every /api/v1 route may answer with."""


def problem_response(problem: ApiProblem, path: str) -> Response[Any]:
    return Response(
        problem.body(path),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=problem.headers,
    )


def on_problem(request: Request[Any, Any, Any], exc: ApiProblem) -> Response[Any]:
    return problem_response(exc, request.url.path)


def on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (a parameter that fails its declaration, no such
    route, a body too large) as problem documents."""
    status = exc.status_code
    if isinstance(exc, ValidationException):
        details = [
            f"{e.get('key', '?')}: {e.get('message', '')}"
            for e in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(e, dict)
        ]
        problem = ApiProblem(
            400,
            "Bad Request",
            "; ".join(details) or str(exc.detail),
            extra={
                "errors": [
                    {"reading": None, "metric": None, "reason": "bad_parameter", "detail": d}
                    for d in details
                ]
            },
        )
    else:
        problem = ApiProblem(
            status, _TITLES.get(status, "Error"), str(exc.detail), headers=dict(exc.headers or {})
        )
    return problem_response(problem, request.url.path)


_TITLES = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
}


def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    problem = ApiProblem(
        500, "Internal Server Error", "an unexpected error; it is logged. Please report it."
    )
    return problem_response(problem, request.url.path)
