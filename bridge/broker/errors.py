"""The one error of the broker tooling."""

from __future__ import annotations

from bridge.errors import BridgeError


class BrokerError(BridgeError):
    """The tool could not do what was asked; the message says what to fix."""
