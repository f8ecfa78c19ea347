"""The API's errors are one branch of the project's error tree, and an
ApiProblem is an RFC 9457 document."""

from __future__ import annotations

import pytest

from bridge.api.ingest import BadBody, Unavailable
from bridge.api.params import page_size
from bridge.api.problems import ApiError, ApiProblem
from bridge.api.series import TooManyPoints
from bridge.errors import RedisUnavailable
from core.errors import BridgeError


@pytest.mark.parametrize("cls", [ApiProblem, TooManyPoints, BadBody, Unavailable])
def test_every_api_error_is_a_bridge_error(cls: type[Exception]) -> None:
    assert issubclass(cls, ApiError)
    assert issubclass(cls, BridgeError)


def test_the_cache_being_down_is_a_bridge_error_but_no_api_error() -> None:
    assert issubclass(RedisUnavailable, BridgeError)
    assert not issubclass(RedisUnavailable, ApiError)  # reads fall back; never an answer


def test_a_problem_document_has_the_rfc_9457_members_and_its_extras() -> None:
    with pytest.raises(ApiProblem) as caught:
        page_size(0, 100, 1000)
    assert caught.value.body("/api/v1/devices") == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "limit must be between 1 and 1000",
        "instance": "/api/v1/devices",
    }
    problem = ApiProblem(503, "Not Stored", "retry", extra={"reason": "x"}, headers={"A": "1"})
    assert problem.body("/p")["reason"] == "x"
    assert problem.headers == {"A": "1"}
    assert str(problem) == "retry"
