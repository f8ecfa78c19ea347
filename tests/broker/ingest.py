"""The real bridge (`bridge run`) subscribed to one of our brokers, logging in
as the bridge user, with the production topic template
telemetry/{site_id}/{device_id}, so the broker's ACL applies to what it reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.harness import Scenario


@dataclass
class BrokerScenario(Scenario):
    """A Scenario whose bridge connects to ``mqtt_port`` as ``username``."""

    mqtt_port: int = 0
    username: str = "bridge"
    password: str = ""
    # A share group nobody can guess: Mosquitto 2.0.11 lets any logged-in
    # client join a share group (see test_shared.py).
    group: str = field(default_factory=lambda: "bridge-" + uuid.uuid4().hex)

    def write_config(self, http_port: int, **overrides: Any) -> Path:
        values = {"receive_maximum": 2000, "max_delay_ms": 50, "grace_s": 20} | overrides
        path = self.tmp / f"bridge-{self.tag}.toml"
        path.write_text(
            f"""
[database]
url = "{self.db_url}"
pool_size = 2
# Not 0: bridge.pipeline (b55431c) treats the maintain task returning at once,
# as it does with 0, as a crash and stops the worker.
maintain_interval_s = 3600

[redis]
url = "{self.stack.redis_url}"
prefix = "{self.tag}:"
timeout_s = 1.0

[mqtt]
host = "127.0.0.1"
port = {self.mqtt_port}
username = "{self.username}"
password = "{self.password}"
client_id = "{self.client_id}"
group = "{self.group}"
session_expiry_s = 600
receive_maximum = {values["receive_maximum"]}
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[[mqtt.routes]]
topic = "telemetry/{{site_id}}/{{device_id}}"
codec = "seed_json"

[batch]
max_points = 1000
max_delay_ms = {values["max_delay_ms"]}

[http]
port = {http_port}

[shutdown]
grace_s = {values["grace_s"]}
"""
        )
        return path
