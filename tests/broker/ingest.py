"""The real bridge (`bridge run`) subscribed to one of our brokers, logging in
as the bridge user, with the production topic template
telemetry/{site_id}/{device_id}, so the broker's ACL applies to what it reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tests.integration.harness import Scenario


@dataclass
class BrokerScenario(Scenario):
    """A Scenario whose bridge logs in to ``mqtt_port`` as the bridge user and
    reads the production template telemetry/{site_id}/{device_id}."""

    username: str | None = "bridge"
    # A share group nobody can guess: Mosquitto 2.0.11 lets any logged-in
    # client join a share group (see test_shared.py).
    group: str = field(default_factory=lambda: "bridge-" + uuid.uuid4().hex)
    root: str | None = "telemetry"
