"""The serving sections: the workers' health and metrics server (http), the
read API (api, with its optional broker login for ingest_via = broker) and
the shutdown grace (shutdown)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bridge.config.ingest import BrokerLogin
from bridge.config.section import Section


class HttpSettings(Section):
    host: str = Field("127.0.0.1", description="Address of /healthz, /readyz and /metrics.")
    port: int = Field(
        9108, ge=0, le=65535, description="Port of worker 0; worker N listens on port + N (0: off)."
    )


class ApiSettings(Section):
    """The read API (`bridge api`)."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(9180, ge=1, le=65535, description="Port the API listens on.")
    online_after_s: float = Field(
        300.0,
        gt=0,
        description="A device whose last point is newer than this is online; else offline.",
    )
    page_size: int = Field(100, ge=1, le=10_000, description="Devices per page by default.")
    max_page_size: int = Field(1000, ge=1, le=10_000, description="Largest page a client may ask.")
    series_points: int = Field(
        2000,
        ge=100,
        le=100_000,
        description="Points per series a query aims to stay within; picks raw rows, 1m or 1h.",
    )
    max_range_days: int = Field(
        400, ge=1, le=3650, description="Longest time range one query may ask for."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, e.g. ["https://grafana.example"].',
    )
    key_cache_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long a checked API key is trusted before it is looked up again "
        "(a revoked key stops working within this).",
    )
    ingest_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long a submit waits for its commit before 503."
    )
    db_pool_size: int = Field(8, ge=1, le=100, description="Database connections the API may open.")
    ingest_via: Literal["database", "broker"] = Field(
        "database",
        description="How a submit becomes durable before its answer: committed to the "
        "database by the API, or accepted by the broker at QoS 1 (PUBACK) and stored by the "
        "bridge; readings the broker does not accept are committed by the API.",
    )
    broker_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="ingest_via = broker: how long a submit waits for the broker's PUBACK "
        "before committing its readings itself.",
    )
    broker: BrokerLogin | None = Field(
        None,
        description="ingest_via = broker: the API's broker account, allowed to publish "
        "telemetry (mosquitto/README.md).",
    )

    @model_validator(mode="after")
    def _broker_when_used(self) -> ApiSettings:
        if self.ingest_via == "broker" and self.broker is None:
            raise ValueError(
                "api.ingest_via = 'broker' needs [api.broker]: the host, port and account the "
                "API publishes with (BRIDGE_API__BROKER__USERNAME, ...)"
            )
        return self


class ShutdownSettings(Section):
    grace_s: float = Field(
        20.0, gt=0, description="On SIGTERM, time to flush and ack before exiting anyway."
    )
