"""Fixtures for the alarm tests that run real services (see tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.integration.harness import Publisher, Scenario


@pytest.fixture
def scenario(stack: Stack, plain_db: str, tmp_path: Path) -> Scenario:
    return Scenario(stack, plain_db, tmp_path)


@pytest.fixture
def publisher(stack: Stack):  # type: ignore[no-untyped-def]
    pub = Publisher(stack)
    yield pub
    pub.close()
