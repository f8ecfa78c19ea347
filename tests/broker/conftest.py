"""Fixtures for tests against real Mosquitto processes started from the
shipped configs (mosquitto/cloud.conf, mosquitto/edge.conf) on ports
41883-41999. PostgreSQL and Redis, when a test needs the real bridge, are the
shared test stack's (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker import ca
from tests.broker.brokers import Cloud, make_cloud


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development CA with a server certificate for localhost and 127.0.0.1,
    and a client certificate 'bridge-svc', made by `bridge broker ca`."""
    folder = tmp_path_factory.mktemp("pki")
    ca.make(folder, ["localhost", "127.0.0.1"], ["bridge-svc"], broker_group=None)
    return folder


@pytest.fixture
def cloud(tmp_path: Path, pki: Path) -> Iterator[Cloud]:
    """A running cloud broker with the user 'bridge'; stopped after the test."""
    broker = make_cloud(tmp_path / "cloud", pki)
    try:
        broker.broker.start()
        yield broker
    finally:
        broker.broker.stop()
