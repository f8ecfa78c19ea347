"""Schemathesis against the live OpenAPI document of a real `bridge api`:
whatever it sends, no 5xx, and every answer matches the document."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.harness import ApiProcess, create_key
from tests.conftest import Stack, _clone
from tests.integration.harness import Scenario, fetch_rows, free_port_block


@pytest.fixture(scope="module")
def fuzz_target(
    stack: Stack, templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    clone = _clone(stack, templates["plain"])
    try:
        scenario = Scenario(stack, next(clone), tmp)
        config = scenario.write_config(free_port_block(1))
        api = ApiProcess(config, tmp).start()
        try:
            key = create_key(config, "read", "write")
            now = time.time()
            for device in ("pump-1", "pump-2"):  # something for the reads to find
                readings = [
                    {"device_id": device, "timestamp": now - i * 30, "data": {"flow_rate": i}}
                    for i in range(100)
                ]
                reply = api.request(
                    "POST", "/api/v1/telemetry/batch", key, orjson.dumps({"readings": readings})
                )
                assert reply.status == 202, reply.body
            fetch_rows(  # string values, for the text series and latest_text to find
                scenario.db_url,
                "INSERT INTO telemetry_text (time, device_id, metric, text) "
                "SELECT now() - i * interval '30 s', 'pump-1', 'state', 'run ' || i "
                "FROM generate_series(0, 49) AS i RETURNING 1",
            )
            yield api, key
        finally:
            api.kill()
    finally:
        clone.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_target: tuple[ApiProcess, str]) -> schemathesis.BaseSchema:
    api, _ = fuzz_target
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{api.port}/openapi.json")


@pytest.mark.timeout(600)
def test_the_api_keeps_to_its_document(
    api_schema: schemathesis.BaseSchema, fuzz_target: tuple[ApiProcess, str]
) -> None:
    # Driven by hand rather than by schemathesis' pytest plugin, whose
    # from_fixture does not work with this pytest; the checks are the same.
    _, key = fuzz_target
    auth = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            # Not positive_data_acceptance: the document cannot say everything a
            # request must be (start before end, a timestamp that exists, a
            # range within api.max_range_days), and those get a 400 by design.
            case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance])

        fuzz()
