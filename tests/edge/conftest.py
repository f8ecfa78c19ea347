"""Fixtures of the edge agent's tests: the integration tests' publisher."""

from tests.integration.conftest import publisher

__all__ = ["publisher"]
