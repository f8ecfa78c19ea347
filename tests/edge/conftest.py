"""Fixtures of the edge agent's tests: the integration tests' publisher, and
the broker tests' development CA and production cloud broker."""

from tests.broker.conftest import cloud, pki
from tests.integration.conftest import publisher

__all__ = ["cloud", "pki", "publisher"]
